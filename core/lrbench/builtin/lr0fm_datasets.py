"""(being written by a helper in this session)"""

"""Hook implementations: everything the face plugin registers with lrbench."""

from __future__ import annotations

from lrbench import hookimpl

from . import datasets, lr, metrics, models, tasks, toyfaces
from .methods import STRATEGIES, method_factory


@hookimpl
def register_models(register):
    register(
        "face-iresnet",
        models.face_iresnet,
        models.face_iresnet.__doc__.split("\n")[0],
        accepts_id=True,
        kind="embedder",
        info={"ids": "r18, r34, r50, r100", "input": 112},
    )
    register(
        "facenet",
        models.facenet,
        "facenet-pytorch InceptionResnetV1 (vggface2 / casia-webface / file)",
        accepts_id=True,
        kind="embedder",
        inputs=models.facenet_inputs,
        check=models.facenet_check,
        info={"ids": "vggface2, casia-webface, file", "input": 160, "install": "pip install facenet-pytorch"},
    )
    register(
        "face-timm",
        models.face_timm,
        "any timm backbone + an ArcFace embedding head",
        accepts_id=True,
        kind="embedder",
        inputs=models.face_timm_inputs,
        check=models.face_timm_check,
        info={"input": 112, "install": "pip install timm"},
    )


@hookimpl
def register_datasets(register):
    register("face-bin", datasets.BinVerification, "insightface verification .bin (lfw.bin, agedb_30.bin, ...)")
    register("face-pairs", datasets.PairsVerification, "LFW-style pairs.txt + aligned image folders (LFW, XQLFW)")
    register("scface", datasets.scface, "SCface: surveillance probes d1/d2/d3 vs frontal mugshots")
    register("tinyface", datasets.tinyface, "TinyFace: LR probes vs gallery + distractors")
    register("toyfaces", toyfaces.ToyFaces, "generated toy face identities (training set of the offline proof)")
    register("toyfaces-pairs", toyfaces.ToyFacePairs, "generated toy face verification pairs, LFW-shaped")
    register("toyfaces-id", toyfaces.ToyFaceGallery, "generated toy face identification (gallery + distractors)")


@hookimpl
def register_degradations(register):
    register("face-lr", lr.FaceLR, "face LR simulation: bicubic down to r (antialiased), back up, 8-bit")
    register("face-protocol", lr.FaceProtocol, "per-image resolutions of the multi-resolution face protocols")


@hookimpl
def register_tasks(register):
    register("verification", tasks.Verification, tasks.Verification.__doc__)
    register("identification", tasks.Identification, tasks.Identification.__doc__)


def _rank(k: int):
    def factory() -> metrics.RankK:
        return metrics.RankK(k)

    factory.__doc__ = f"Rank-{k} identification rate (overall and per probe group)"
    return factory


@hookimpl
def register_metrics(register):
    register("face_acc", metrics.FaceAccuracy, metrics.FaceAccuracy.__doc__)
    register("tar_far", metrics.TarAtFar, metrics.TarAtFar.__doc__)
    register("roc_auc", metrics.RocAuc, metrics.RocAuc.__doc__)
    register("face_dist", metrics.DistanceStats, metrics.DistanceStats.__doc__)
    register("rank_k", metrics.RankK, metrics.RankK.__doc__)
    for k in (1, 5, 10, 20):
        register(f"rank{k}", _rank(k), f"Rank-{k} identification rate")


@hookimpl
def register_methods(register):
    for strategy in STRATEGIES:
        register(f"face/{strategy}", method_factory(strategy), f"face training strategy {strategy}")

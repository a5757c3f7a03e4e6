"""The `evaluation` section of the config (pydantic) -> croc's plain protocol dataclasses."""

from __future__ import annotations

from pipelines.config.evaluation import EvaluationSection


def protocol_of(evaluation: EvaluationSection):
    """The pydantic section -> croc's plain protocol dataclasses."""
    from croc.eval.linear_probe import LinearProbeConfig
    from croc.eval.propagation import PropagationConfig
    from croc.eval.tasks import EvalProtocol
    from croc.eval.unsupervised import UnsupervisedConfig

    lin, uns, dav = evaluation.linear, evaluation.unsup, evaluation.davis
    linear = LinearProbeConfig(image_size=lin.image_size, last_n=lin.last_n, lr=lin.lr, batch_size=lin.batch_size,
                               scale=tuple(lin.scale), rotation_deg=lin.rotation_deg, flip=lin.flip,
                               max_train_images=lin.max_train_images, max_val_images=lin.max_val_images,
                               classes=evaluation.classes)
    ade20k = LinearProbeConfig(image_size=lin.ade20k_crop_size, last_n=lin.last_n, batch_size=lin.batch_size,
                               scale=tuple(lin.scale), rotation_deg=lin.rotation_deg, flip=lin.flip,
                               max_train_images=lin.max_train_images, max_val_images=lin.max_val_images,
                               iterations=lin.ade20k_iterations, crop_size=lin.ade20k_crop_size,
                               lrs=tuple(lin.ade20k_lrs), eval_every=lin.ade20k_eval_every,
                               classes=evaluation.classes)
    unsup = UnsupervisedConfig(image_size=uns.image_size, mask_size=uns.mask_size, last_n=uns.last_n,
                               pca_dim=uns.pca_dim, seeds=tuple(uns.seeds), iterations=uns.iterations,
                               restarts=uns.restarts, max_points_per_centroid=uns.max_points_per_centroid,
                               max_pca_vectors=uns.max_pca_vectors, cluster_tokens=uns.cluster_tokens,
                               max_images=uns.max_images, classes=evaluation.classes)
    davis = PropagationConfig(short_side=dav.short_side, size_multiple=dav.size_multiple, last_n=dav.last_n,
                              temperature=dav.temperature, n_last_frames=dav.n_last_frames,
                              neighborhood=dav.neighborhood, topk=dav.topk, max_videos=dav.max_videos)
    return EvalProtocol(linear=linear, linear_epochs=dict(lin.epochs), ade20k=ade20k, unsup=unsup, davis=davis,
                        davis_split=dav.split)

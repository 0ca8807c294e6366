"""Shared quality metrics: agreement with an FP32 reference, accuracy against labels.

A benchmark that ranks inferences per joule must catch the "accuracy cliff" of
a badly quantised or otherwise broken model, so every run's outputs on the
suite's fixed input set are compared with the suite's FP32 reference (or, where
the inputs have labels and the model is a real one, with the labels):

``top1_agreement``
    Fraction of samples whose arg-max equals the reference's arg-max.
``cosine_mean`` / ``cosine_min``
    Cosine similarity of the *mean-centred* output vectors (Pearson
    correlation), per sample. Centring makes the figure invariant to a
    constant shift and a positive scale, i.e. to the affine map
    ``real = scale * (q - zero_point)`` of a quantised output tensor: raw int8
    logits of a full-integer model compare with float logits without knowing
    their quantisation parameters. Softmax is shift-invariant, so a constant
    shift of the logits is no difference in the answer either.
``accuracy``
    Fraction of samples whose arg-max is the label.

:class:`QualityTarget` holds the thresholds a run must meet; a run below its
target is stored invalid and never ranked (see docs/precision.md for how the
mobilenet_v2 targets were chosen).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from wattbench.core.suite import QualityResult


class QualityTarget(BaseModel):
    """Minimum agreement with the FP32 reference for one precision."""

    model_config = ConfigDict(frozen=True)

    top1_agreement: float = Field(ge=0, le=1, description="Minimum top-1 agreement.")
    cosine: float = Field(ge=-1, le=1, description="Minimum mean centred cosine similarity.")


def _matrix(rows: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(r, dtype=np.float64).reshape(-1) for r in rows])


def top1_agreement(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Fraction of samples whose arg-max equals the reference's."""
    a, b = _matrix(outputs), _matrix(reference)
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


def centred_cosines(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> np.ndarray:
    """Per-sample cosine similarity of the mean-centred vectors (0 where one is constant)."""
    a, b = _matrix(outputs), _matrix(reference)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    # a constant output vector carries no information: count it as uncorrelated
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def accuracy(outputs: Sequence[np.ndarray], labels: Sequence[int]) -> float:
    """Fraction of samples whose arg-max is the label."""
    pred = _matrix(outputs).argmax(axis=1)
    return float((pred == np.asarray(labels)).mean())


def agreement_result(
    outputs: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    target: QualityTarget,
    *,
    what: str,
) -> QualityResult:
    """Judge ``outputs`` against the FP32 ``reference`` of the same samples.

    ``what`` names the comparison in the detail line (e.g. "int8 vs the FP32
    reference (onnxruntime CPU)").
    """
    if len(outputs) != len(reference):
        return QualityResult(
            passed=False,
            kind="agreement",
            detail=f"{len(outputs)} outputs for {len(reference)} reference outputs",
        )
    n_out = int(np.asarray(outputs[0]).size)
    n_ref = int(np.asarray(reference[0]).size)
    if n_out != n_ref:
        return QualityResult(
            passed=False,
            kind="agreement",
            detail=f"{what}: the model has {n_out} outputs per sample, the reference {n_ref} "
            f"(not the same network)",
        )
    top1 = top1_agreement(outputs, reference)
    cos = centred_cosines(outputs, reference)
    metrics = {
        "top1_agreement": top1,
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "samples": float(len(outputs)),
        "target_top1_agreement": target.top1_agreement,
        "target_cosine": target.cosine,
    }
    problems = []
    if top1 < target.top1_agreement:
        problems.append(f"top-1 agreement {top1:.3f} < {target.top1_agreement}")
    if metrics["cosine_mean"] < target.cosine:
        problems.append(f"mean cosine {metrics['cosine_mean']:.4f} < {target.cosine}")
    summary = (
        f"{what} on {len(outputs)} samples: top-1 agreement {top1:.3f} "
        f"(target {target.top1_agreement}), mean cosine {metrics['cosine_mean']:.4f} "
        f"(target {target.cosine})"
    )
    return QualityResult(
        passed=not problems,
        kind="agreement",
        metrics=metrics,
        detail=summary if not problems else f"{summary}: below target ({'; '.join(problems)})",
    )


def accuracy_result(
    outputs: Sequence[np.ndarray], labels: Sequence[int], target: float, *, what: str
) -> QualityResult:
    """Judge ``outputs`` against ``labels`` (class indices in the outputs' own indexing)."""
    acc = accuracy(outputs, labels)
    metrics = {"accuracy": acc, "samples": float(len(labels)), "target_accuracy": target}
    summary = f"{what}: top-1 accuracy {acc:.3f} on {len(labels)} labelled samples"
    passed = acc >= target
    return QualityResult(
        passed=passed,
        kind="accuracy",
        metrics=metrics,
        detail=f"{summary} (target {target})" if passed else f"{summary}: below target {target}",
    )

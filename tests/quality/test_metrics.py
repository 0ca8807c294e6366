"""The shared agreement/accuracy metrics of wattbench.suites.quality."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from wattbench.suites.quality import (
    QualityTarget,
    accuracy,
    accuracy_result,
    agreement_result,
    centred_cosines,
    top1_agreement,
)

TARGET = QualityTarget(top1_agreement=0.75, cosine=0.98)


def _rows(n: int = 8, classes: int = 1000, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(classes).astype(np.float32) for _ in range(n)]


def test_identical_outputs_agree_fully() -> None:
    ref = _rows()
    assert top1_agreement(ref, ref) == 1.0
    np.testing.assert_allclose(centred_cosines(ref, ref), 1.0)


def test_centred_cosine_ignores_a_quantised_tensor_s_affine_map() -> None:
    """Raw int8 logits = round(x / scale) + zero_point compare with the float logits."""
    ref = _rows()
    scale, zero = 0.05, -7
    q = [np.clip(np.round(r / scale) + zero, -128, 127).astype(np.int8) for r in ref]
    cos = centred_cosines(q, ref)
    assert cos.min() > 0.999  # only rounding error left
    assert top1_agreement(q, ref) == 1.0
    # an uncentred cosine would be hurt by the zero point: the reason for centring
    a, b = np.asarray(q[0], np.float64), np.asarray(ref[0], np.float64)
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) < cos.min() - 0.01


def test_unrelated_outputs_are_uncorrelated() -> None:
    cos = centred_cosines(_rows(seed=1), _rows(seed=2))
    assert np.abs(cos).max() < 0.15
    assert top1_agreement(_rows(seed=1), _rows(seed=2)) < 0.5


def test_constant_output_counts_as_uncorrelated() -> None:
    ref = _rows(n=2)
    const = [np.full(1000, 3.0, dtype=np.float32)] * 2
    np.testing.assert_array_equal(centred_cosines(const, ref), [0.0, 0.0])


def test_top1_agreement_counts_flips() -> None:
    ref = [np.eye(10, dtype=np.float32)[i] for i in range(4)]
    out = [np.eye(10, dtype=np.float32)[i] for i in (0, 1, 2, 9)]
    assert top1_agreement(out, ref) == 0.75
    assert accuracy(out, [0, 1, 2, 3]) == 0.75
    assert accuracy(out, [9, 9, 9, 9]) == 0.25


def test_agreement_result_passes_and_fails_on_each_target() -> None:
    ref = _rows()
    rng = np.random.default_rng(3)
    close = [r + rng.normal(0, 0.01, r.shape).astype(np.float32) for r in ref]
    ok = agreement_result(close, ref, TARGET, what="int8 vs ref")
    assert ok.passed and ok.kind == "agreement"
    assert ok.metrics["samples"] == 8 and ok.metrics["target_cosine"] == 0.98
    assert ok.detail.startswith("int8 vs ref on 8 samples")

    # cosine below target, top-1 still fine: fails on the cosine alone
    noisy = [r + rng.normal(0, 0.3, r.shape).astype(np.float32) for r in ref]
    for n, r in zip(noisy, ref, strict=True):
        n[int(np.argmax(r))] += 10  # keep the winner: only the cosine drops
    bad = agreement_result(noisy, ref, TARGET, what="x")
    assert not bad.passed
    assert bad.metrics["top1_agreement"] == 1.0
    assert "mean cosine" in bad.detail and "top-1 agreement 1.000 <" not in bad.detail

    # top-1 below target, cosine fine
    strict = QualityTarget(top1_agreement=1.0, cosine=0.5)
    flipped = [r.copy() for r in ref]
    flipped[0][int(np.argmax(flipped[0]))] = -10
    res = agreement_result(flipped, ref, strict, what="x")
    assert not res.passed and "top-1 agreement 0.875 < 1.0" in res.detail


def test_agreement_result_refuses_a_different_network() -> None:
    res = agreement_result(_rows(classes=1001), _rows(), TARGET, what="user model")
    assert not res.passed
    assert "1001 outputs per sample, the reference 1000" in res.detail
    res = agreement_result(_rows(n=3), _rows(n=4), TARGET, what="x")
    assert not res.passed and "3 outputs for 4 reference outputs" in res.detail


def test_accuracy_result() -> None:
    out = [np.eye(5, dtype=np.float32)[i] for i in (0, 1, 2, 3, 0)]
    res = accuracy_result(out, [0, 1, 2, 3, 4], 0.6, what="pretrained")
    assert res.passed and res.kind == "accuracy" and res.metrics["accuracy"] == 0.8
    res = accuracy_result(out, [4, 4, 4, 4, 0], 0.6, what="pretrained")
    assert not res.passed and "below target 0.6" in res.detail


def test_targets_are_validated() -> None:
    with pytest.raises(ValidationError):
        QualityTarget(top1_agreement=1.5, cosine=0.9)

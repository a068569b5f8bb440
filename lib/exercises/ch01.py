"""Checks for chapter 1's exercises (analysis and synthesis)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .. import checks, density
from . import checker, close, expect, monotone, nearest_distance, number


@checker("ch01-ridge")
def ridge(*, x_train, rank, test_loglik) -> str:
    """``rank``: rank of the (N, D) matrix of training images; ``test_loglik``: {lambda: test
    log-likelihood in nats/pixel} for at least three values of lambda."""
    x = checks.floating(checks.tensor(x_train, "x_train"), "x_train").flatten(1)
    if not isinstance(test_loglik, Mapping) or len(test_loglik) < 3:
        raise TypeError(
            "test_loglik must be a dict {lambda: test log-likelihood per pixel} "
            "with at least three values of lambda"
        )
    reference = int(torch.linalg.matrix_rank(x.double()))
    expect(
        int(number(rank, "rank")) == reference,
        "the rank is that of the N x D matrix whose rows are the flattened training "
        "images (each image one row); compute it in double precision",
    )
    expect(reference < x.shape[1], "the digits should not span all of pixel space")
    lams = sorted(test_loglik, reverse=True)  # from the largest lambda to the smallest
    values = [number(test_loglik[lam], f"test_loglik[{lam}]") for lam in lams]
    expect(
        all(-5 < v < 50 for v in values),
        "a log-likelihood per pixel of these digits lies between about -5 and 50 nats: "
        "did you divide the per-image log-likelihood by the number of pixels D?",
    )
    monotone(
        values,
        "as lambda shrinks, the test log-likelihood of digits that lie on the same "
        "subspace as the training digits should keep rising: refit the model for each lambda",
    )
    return (
        f"rank {reference} of {x.shape[1]} pixels; the test log-likelihood rises from "
        f"{values[0]:.2f} to {values[-1]:.2f} nats/pixel as lambda falls and never stops: "
        "the density of data on a subspace is unbounded"
    )


@checker("ch01-copy")
def copy(*, samples, x_train, x_test, d_samples, d_test, copies) -> str:
    """``d_samples`` / ``d_test``: median distance of the samples / the test digits to their
    nearest training digit; ``copies``: True if you conclude the model copies its training set."""
    ref_s = nearest_distance(samples, x_train).median().item()
    ref_t = nearest_distance(x_test, x_train).median().item()
    close(
        number(d_samples, "d_samples"),
        ref_s,
        "d_samples is the median over samples of the Euclidean distance to the nearest "
        "training digit (flatten the images, take the minimum over the training set)",
        rtol=0.02,
    )
    close(
        number(d_test, "d_test"),
        ref_t,
        "d_test is the same distance for the real test digits",
        rtol=0.02,
    )
    if not isinstance(copies, bool):
        raise TypeError(f"copies must be True or False, got {type(copies).__name__}")
    expect(
        copies == (ref_s < 0.5 * ref_t),
        "compare the two distances: a copying model's samples would sit much closer to the "
        "training set than new real digits do",
    )
    return (
        f"samples are {ref_s:.2f} from the training set, real test digits {ref_t:.2f}: "
        + ("the samples copy." if copies else "no sign of copying.")
    )


@checker("ch01-single")
def single(*, x_train, x_test, reg, single_loglik, per_class_loglik) -> str:
    """``single_loglik`` / ``per_class_loglik``: test log-likelihood (nats/pixel) of one Gaussian
    fitted to all digits and of the per-class model, both with ridge ``reg``."""
    x_train = checks.floating(checks.tensor(x_train, "x_train"), "x_train")
    x_test = checks.floating(checks.tensor(x_test, "x_test"), "x_test")
    one = density.ClassGaussians(reg=reg).fit(
        x_train, torch.zeros(len(x_train), dtype=torch.long)
    )
    reference = one.log_prob(x_test).mean().item() / x_test[0].numel()
    s = number(single_loglik, "single_loglik")
    close(
        s,
        reference,
        "fit ONE Gaussian to every training digit (give every digit the same "
        "label) and report its mean test log-likelihood per pixel",
        rtol=0.01,
        atol=0.01,
    )
    p = number(per_class_loglik, "per_class_loglik")
    expect(
        p > s,
        "the per-class model is a mixture of ten Gaussians, one per digit: on the same "
        "test digits it should explain them better than one Gaussian does",
    )
    return (
        f"one Gaussian {s:.3f} vs per class {p:.3f} nats/pixel: knowing the class buys "
        f"{p - s:.3f} nats per pixel"
    )

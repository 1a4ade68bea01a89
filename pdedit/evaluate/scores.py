"""The arithmetic of the distribution metrics: Gaussian statistics, Fréchet distance, Inception Score.

Pure numpy/scipy on feature arrays, so each figure can be checked against its closed form.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

__all__ = ["gaussian_stats", "frechet_distance", "inception_score"]


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of (N, D) features, the unbiased estimate of pytorch-fid and FVD."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2) (Dowson and Landau, 1982).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``: FID (Heusel et al., 2017) on
    Inception features, FVD (Unterthiner et al., 2018) on I3D features.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    with warnings.catch_warnings():
        # Fewer samples than dimensions make the product singular; scipy warns, the check below handles it.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product (fewer samples than dimensions): nudge both diagonals, as pytorch-fid does.
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)  # rounding leaves a tiny imaginary part
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)))


def inception_score(probs: np.ndarray, splits: int = 1) -> tuple[float, float]:
    """Inception Score (Salimans et al., 2016) of (N, K) class probabilities: mean and std over splits.

    ``exp(E_x KL(p(y|x) || p(y)))`` within each of ``splits`` equal parts; 1 for a generator whose every
    sample gets the same distribution, K at most.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < splits or splits < 1:
        raise ValueError(f"need (N >= splits, K) probabilities and splits >= 1, got {probs.shape}, {splits}")
    values = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(marginal + 1e-12))).sum(axis=1).mean()
        values.append(float(np.exp(kl)))
    return float(np.mean(values)), float(np.std(values))

"""HiPPO-LegS and the initializations of S4 (DPLR) and S4D (diagonal), in NumPy (run once at init).

HiPPO-LegS (Gu et al. 2020), for ``n, k = 0..N-1``::

    A_nk = -sqrt(2n+1) sqrt(2k+1)  if n > k,   -(n+1)  if n = k,   0  if n < k
    B_n  = sqrt(2n+1)

It is normal plus low rank: ``A = S - p p^T`` with ``p_n = sqrt(n + 1/2)`` and
``S`` skew-symmetric minus ``I/2`` (hence normal), so ``S = V diag(Lambda) V^*``
and ``A = V (diag(Lambda) - (V^* p)(V^* p)^*) V^*`` (the DPLR form of S4).
Eigenvalues come in conjugate pairs; we keep the ``N/2`` with positive
imaginary part and the SSM layers restore the conjugates.
"""

from __future__ import annotations

import numpy as np

from seqjax.errors import check_choice

S4D_INITS = ("legs", "lin", "inv")


def hippo_legs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The dense HiPPO-LegS pair ``(A [N, N], B [N])`` of the equations above."""
    q = np.sqrt(2 * np.arange(n) + 1.0)
    a = -(np.tril(np.outer(q, q)) - np.diag(np.arange(n)))
    return a, q.copy()


def hippo_n(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Lambda [N/2], V [N, N/2])``: HiPPO-N ``S = A + p p^T = V diag(Lambda) V^*``, the half with ``Im > 0``.

    ``S`` is ``-I/2`` plus a skew-symmetric matrix, so ``Re(Lambda) = -1/2`` and ``V`` is unitary
    (the initialization of S5, Smith et al. 2023; ``N`` must be even).

    >>> lam, v = hippo_n(4)
    >>> np.allclose(lam.real, -0.5), v.shape
    (True, (4, 2))
    """
    if n % 2:
        raise ValueError(f"HiPPO-N needs an even state size (conjugate pairs), got {n}")
    a, _ = hippo_legs(n)
    p = np.sqrt(np.arange(n) + 0.5)
    s = a + np.outer(p, p)
    lam_re = np.mean(np.diag(s))  # = -1/2
    lam_im, v = np.linalg.eigh(-1j * (s - lam_re * np.eye(n)))  # S - lam_re I = V diag(i lam_im) V^*
    keep = np.argsort(lam_im)[n // 2 :]  # positive imaginary parts
    return lam_re + 1j * lam_im[keep], v[:, keep]


def dplr_legs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Lambda, P, B)`` of HiPPO-LegS in DPLR form, half of each conjugate pair (``N/2`` entries).

    ``A = V (diag(Lambda) - P P^*) V^*`` and ``V^* B``, restricted to the
    eigenvalues with ``Im(Lambda) > 0`` (``N`` must be even).
    """
    if n % 2:
        raise ValueError(f"S4 needs an even state size (conjugate pairs), got {n}")
    _, b = hippo_legs(n)
    lam, v = hippo_n(n)
    return lam, v.conj().T @ np.sqrt(np.arange(n) + 0.5), v.conj().T @ b


def s4d_init(n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(Lambda, B)`` for S4D with ``N/2`` modes (Gu et al. 2022), ``j = 0..N/2-1``.

    * ``lin``: ``Lambda_j = -1/2 + i pi j``, ``B_j = 1``;
    * ``inv``: ``Lambda_j = -1/2 + i (N/pi) (N/(2j+1) - 1)``, ``B_j = 1``;
    * ``legs``: the diagonal of HiPPO-LegS's DPLR form (its low-rank term dropped), ``B = V^* B``.
    """
    check_choice("S4D init", kind, S4D_INITS)
    if n % 2:
        raise ValueError(f"S4D needs an even state size (conjugate pairs), got {n}")
    if kind == "legs":
        lam, _, b = dplr_legs(n)
        return lam, b
    j = np.arange(n // 2)
    imag = np.pi * j if kind == "lin" else (n / np.pi) * (n / (2 * j + 1) - 1)
    return -0.5 + 1j * imag, np.ones(n // 2, dtype=complex)

"""A small float32 mask network (ReLU hidden layers, sigmoid outputs) trained with Adam.

Written here rather than taken from scikit-learn because the mask estimator needs three things
``MLPRegressor`` does not offer: outputs bounded to ``[0, 1]`` (a sigmoid, not identity then
clipping), a loss weighted per output (each STFT bin by the mixture's magnitude there, so the
error counts where the signal is, as SDR does), and a learning rate that decays over the epochs
with Adam. PyTorch would do all three but is a heavy dependency for one hidden layer.

The weights are plain numpy arrays (``coefs_``, ``intercepts_``), so ``skops`` persists it.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((512, 4)).astype(np.float32)
>>> Y = (X[:, :1] > 0).astype(np.float32)  # learn a step: sigmoid output near 0 or 1
>>> net = MaskNet((8,), random_state=0).initialise(4, 1)
>>> for _ in range(60):
...     _ = net.train_epoch(X, Y, np.ones_like(Y), 0.01, rng)
>>> bool(net.loss(X, Y, np.ones_like(Y)) < 0.05)  # 0.25 at chance
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["MaskNet"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)


class MaskNet:
    """Fully connected network ``X -> sigmoid(...relu(X W0 + b0)... W + b)``.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each ReLU hidden layer.
    alpha : float
        L2 penalty on the weights (added to the gradient as ``alpha * W / n``).
    batch_size : int
        Rows per Adam step.
    random_state : int
        Seeds the initial weights.
    """

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (256,), alpha: float = 1e-4,
                 batch_size: int = 256, random_state: int = 0) -> None:
        self.hidden_layer_sizes = tuple(int(h) for h in hidden_layer_sizes)
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        self.random_state = int(random_state)

    def initialise(self, n_in: int, n_out: int) -> MaskNet:
        """He-initialised hidden layers, Glorot-initialised output; fresh Adam state."""
        rng = np.random.default_rng(self.random_state)
        sizes = [n_in, *self.hidden_layer_sizes, n_out]
        self.coefs_, self.intercepts_ = [], []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            scale = np.sqrt(2.0 / a) if i < len(sizes) - 2 else np.sqrt(2.0 / (a + b))
            self.coefs_.append((rng.standard_normal((a, b)) * scale).astype(np.float32))
            self.intercepts_.append(np.zeros(b, np.float32))
        self._adam = [[np.zeros_like(p) for p in self.coefs_ + self.intercepts_] for _ in (0, 1)]
        self._t = 0
        return self

    def _forward(self, X: np.ndarray) -> list[np.ndarray]:
        acts = [X]
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            z = acts[-1] @ W
            z += b
            acts.append(np.maximum(z, 0, out=z) if i < len(self.coefs_) - 1 else _sigmoid(z))
        return acts

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs in ``[0, 1]``, ``(n, n_out)`` float32 (in blocks: bounded memory)."""
        X = np.asarray(X, np.float32)
        out = [self._forward(X[i : i + 4096])[-1] for i in range(0, len(X), 4096)]
        return np.concatenate(out) if out else np.zeros((0, self.intercepts_[-1].size),
                                                        np.float32)

    def loss(self, X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> float:
        """Weighted mean squared error ``mean(W * (f(X) - Y)^2)``."""
        return float(np.mean(W * (self.predict(X) - Y) ** 2))

    def train_epoch(self, X: np.ndarray, Y: np.ndarray, W: np.ndarray, learning_rate: float,
                    rng: np.random.Generator) -> float:
        """One pass of Adam over ``(X, Y)`` in shuffled minibatches; the epoch's mean loss."""
        b1, b2, eps = 0.9, 0.999, 1e-8
        params = self.coefs_ + self.intercepts_
        m, v = self._adam
        n_layers = len(self.coefs_)
        order = rng.permutation(len(X))
        total = 0.0
        for s in range(0, len(X), self.batch_size):
            idx = order[s : s + self.batch_size]
            acts = self._forward(X[idx])
            out, w = acts[-1], W[idx]
            err = out - Y[idx]
            total += float(np.sum(w * err**2))
            # d loss / d z of the sigmoid layer (loss = mean over rows and outputs)
            delta = (2.0 / (len(idx) * out.shape[1])) * w * err * out * (1.0 - out)
            grads_w, grads_b = [None] * n_layers, [None] * n_layers
            for i in range(n_layers - 1, -1, -1):
                grads_w[i] = acts[i].T @ delta + (self.alpha / len(X)) * self.coefs_[i]
                grads_b[i] = delta.sum(axis=0)
                if i:
                    delta = (delta @ self.coefs_[i].T) * (acts[i] > 0)
            self._t += 1
            lr = learning_rate * np.sqrt(1 - b2**self._t) / (1 - b1**self._t)
            for p, g, mi, vi in zip(params, grads_w + grads_b, m, v, strict=True):
                mi *= b1
                mi += (1 - b1) * g
                vi *= b2
                vi += (1 - b2) * g * g
                p -= (lr * mi / (np.sqrt(vi) + eps)).astype(np.float32)
        return total / (len(X) * Y.shape[1])

    def finish(self) -> MaskNet:
        """Drop the optimiser's state (only further training needs it)."""
        self.__dict__.pop("_adam", None)
        self.__dict__.pop("_t", None)
        return self

    def get_weights(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [w.copy() for w in self.coefs_], [b.copy() for b in self.intercepts_]

    def set_weights(self, weights: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
        self.coefs_, self.intercepts_ = [w.copy() for w in weights[0]], [
            b.copy() for b in weights[1]]

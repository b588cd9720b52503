"""Top guesses of an exported .tflite file for single photos, in LiteRT (no TensorFlow import).

Used by the review queue's background job: the in-service model's file, the photo's stored training
derivative, prepared exactly as phones prepare a photo (preprocess_for_inference).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data
from .types import InputSpec


class Guesser:
    """One LiteRT interpreter on one model file; ``top(path)`` gives [(label, probability)], best first."""

    def __init__(self, *, model_path: Path, labels: list[str], input_spec: InputSpec, k: int = 3):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.labels, self.spec, self.k = list(labels), input_spec, k

    def probabilities(self, image_path: Path) -> np.ndarray:
        pixels = np.asarray(data.load_rgb(image_path), dtype=np.uint8)
        self.interpreter.set_tensor(self.input["index"], data.preprocess_for_inference(pixels, self.spec))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero_point = self.output.get("quantization", (0.0, 0))
        values = (raw.astype(np.float32) - zero_point) * scale if scale else raw.astype(np.float32)
        total = float(values.sum())
        if values.min() < 0 or not 0.98 <= total <= 1.02:  # logits, not probabilities: softmax them
            exp = np.exp(values - values.max())
            values = exp / exp.sum()
        return values

    def top(self, image_path: Path) -> list[tuple[str, float]]:
        probabilities = self.probabilities(image_path)
        order = np.argsort(-probabilities)[: self.k]
        return [(self.labels[i], float(probabilities[i])) for i in order if i < len(self.labels)]

"""The model behind `POST /predict`: LitServe's four hooks, run in each inference worker process.

LitServe's dynamic batching hands `predict` the requests that arrived together (up to --max_batch_size); their texts
go through the backend in one call, so many small requests share forward passes.
"""

# No `from __future__ import annotations`: LitServe reads decode_request's and encode_response's annotations as
# classes to build FastAPI's request and response models.
import signal
from typing import Any

import litserve as ls
import numpy as np

from textcls.serve.backends import Backend, load_backend
from textcls.serve.schema import PredictBody, PredictResponse
from textcls.serve.tasks import Task, task_for
from textcls.serve.validation import PredictRequest


class ClassifierAPI(ls.LitAPI):
    """Texts in, `Classifier.predict` records out.

    Args:
        backend: "torch" (`path` is a checkpoint) or "onnx" (`path` is an export directory).
        path: the model to load in each worker.
        max_batch_size: requests per dynamic batch (1 switches batching off).
        batch_timeout: seconds a batch waits to fill before it runs anyway.
        threads: intra-op threads of the runtime in each worker; unset keeps the runtime's default.
    """

    def __init__(
        self, backend: str, path: str, max_batch_size: int, batch_timeout: float, threads: int | None = None
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/predict")
        self.backend_name = backend
        self.path = path
        self.threads = threads
        self.backend: Backend | None = None
        self.task: Task | None = None

    def setup(self, device: str) -> None:
        # Ctrl-C reaches every process of the terminal's group: a worker keeps answering the requests in flight and
        # is stopped by the main process once the HTTP servers have drained.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.backend = load_backend(self.backend_name, self.path, self.threads)
        info = self.backend.info
        self.task = task_for(info.task, info.label_names, info.thresholds, info.outputs)

    def decode_request(self, request: PredictBody) -> PredictRequest:
        texts = [request.text] if request.text is not None else list(request.texts or [])
        return PredictRequest(texts, request.top_k, request.threshold)

    def predict(self, x: Any) -> Any:
        # Without batching LitServe passes one decoded request, with it a list of them.
        if self.max_batch_size == 1:
            return self._predict([x])[0]
        return self._predict(x)

    def _predict(self, requests: list[PredictRequest]) -> list[tuple[PredictRequest, np.ndarray]]:
        assert self.backend is not None and self.task is not None
        texts = [text for request in requests for text in request.texts]
        probs = self.task.probabilities(self.backend.logits(texts))
        out, start = [], 0
        for request in requests:
            out.append((request, probs[start : start + len(request.texts)]))
            start += len(request.texts)
        return out

    def encode_response(self, output: tuple[PredictRequest, np.ndarray]) -> PredictResponse:
        assert self.task is not None
        request, probs = output
        return {"predictions": self.task.records(probs, request.top_k, request.threshold)}  # type: ignore[return-value]

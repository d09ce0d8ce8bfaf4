"""The request and response bodies of `POST /predict`, as pydantic models: FastAPI's OpenAPI docs (/docs) show them.

The gateway has already checked a body by the time FastAPI parses it into `PredictBody`; these models describe it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PredictBody(BaseModel):
    """Exactly one of `text` and `texts`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "a great film"}, {"texts": ["a great film", "dull"], "top_k": 1}]},
    )

    text: str | None = Field(None, description="One text to classify.")
    texts: list[str] | None = Field(None, description="Several texts, answered in order (at most --max_texts).")
    top_k: int | None = Field(None, description="Keep only the k most probable labels in `probabilities`.")
    threshold: float | None = Field(None, description="Multi-label models only: the probability a label needs.")


class Prediction(BaseModel):
    label: str = Field(description="The most probable label.")
    probability: float = Field(description="Its probability.")
    probabilities: dict[str, float] = Field(
        description="Every label's probability in label order, or with top_k the k most probable, most probable first."
    )


class MultiLabelPrediction(BaseModel):
    labels: list[str] = Field(
        description="Multi-label models: every label whose probability reaches its threshold, in label order."
    )
    probabilities: dict[str, float] = Field(
        description="Every label's probability in label order, or with top_k the k most probable, most probable first."
    )


class PredictResponse(BaseModel):
    """One prediction per text, in input order: the records of the Python API's `Classifier.predict` (a multi-label
    model's label set as a list in label order)."""

    predictions: list[Prediction] | list[MultiLabelPrediction]

"""Writes fmnist-kit/tests/fixtures/classification_reports.json: scikit-learn's classification_report
(output_dict=True and text), confusion matrix and log loss for a few label/prediction cases.

Run once with any Python that has scikit-learn (not a dependency of the project):
    python scripts/dev/make_metric_fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import sklearn
from sklearn.metrics import classification_report, confusion_matrix, log_loss

NAMES = ["t_shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boots"]
rng = np.random.default_rng(2024)


def probs_for(pred, n):
    """Random probability rows whose argmax is `pred`."""
    p = rng.random((n, 10)) * 0.5
    p[np.arange(n), pred] += 1.0
    return p / p.sum(1, keepdims=True)


cases = []
# 1: mostly right, every class present and predicted
y = rng.integers(0, 10, 500)
pred = np.where(rng.random(500) < 0.85, y, rng.integers(0, 10, 500))
cases.append(("mostly_right", y, pred))
# 2: class 6 (shirt) never predicted
y = rng.integers(0, 10, 300)
pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 10, 300))
pred[pred == 6] = 0
cases.append(("shirt_never_predicted", y, pred))
# 3: class 8 (bag) absent from the labels, but predicted sometimes
y = rng.integers(0, 10, 200)
y[y == 8] = 3
pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 10, 200))
cases.append(("bag_absent_from_labels", y, pred))
# 4: class 2 absent everywhere, tiny set
y = np.array([0, 1, 1, 3, 4, 5, 5, 6, 7, 9, 9, 9])
pred = np.array([0, 1, 3, 3, 4, 5, 6, 6, 7, 9, 0, 9])
cases.append(("tiny_with_class_missing", y, pred))

out = {"sklearn": sklearn.__version__, "cases": []}
for name, y, pred in cases:
    probs = probs_for(pred, len(y))
    out["cases"].append({
        "name": name,
        "labels": y.tolist(),
        "predicted": pred.tolist(),
        "probabilities": probs.tolist(),
        "report": classification_report(y, pred, labels=list(range(10)), target_names=NAMES,
                                        zero_division=0, output_dict=True),
        "report_text": classification_report(y, pred, labels=list(range(10)), target_names=NAMES,
                                             zero_division=0),
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(10))).tolist(),
        "log_loss": log_loss(y, probs, labels=list(range(10))),
    })
path = Path(__file__).resolve().parents[2] / "fmnist-kit" / "tests" / "fixtures" / "classification_reports.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")

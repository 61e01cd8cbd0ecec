"""Formats one `fmnist tsne --json` result as a bench line with its targets (used by bench.sh)."""
import json
import sys

v = json.load(sys.stdin)
label, target_s, target_knn = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
verdict = lambda ok: "met" if ok else "MISSED"
secs, knn = v["seconds"], v["knn10_accuracy"]
method = v["config"]["method"]
method = method if isinstance(method, str) else next(iter(method))
print(
    f"  {label:<32} {secs:6.2f} s (target <= {target_s:g} s: {verdict(secs <= target_s)})"
    f"  10-NN {knn:.4f} (target >= {target_knn:g}: {verdict(knn >= target_knn)})"
    f"  [{method}; pca {v['pca_seconds']:.2f} s, neighbours {v['neighbors_seconds']:.2f} s,"
    f" fit {v['fit_seconds']:.2f} s; {v['threads']} threads]"
)

//! The kit's metrics against scikit-learn's, on fixtures scikit-learn produced
//! (`scripts/dev/make_metric_fixtures.py`): the report dict, its text, the confusion matrix and log loss.

use fmnist_kit::data::{CLASS_NAMES, NUM_CLASSES};
use fmnist_kit::metrics::{self, ClassificationReport};
use serde_json::Value;

fn fixtures() -> Vec<Value> {
    let text = include_str!("fixtures/classification_reports.json");
    let v: Value = serde_json::from_str(text).expect("fixture JSON");
    v["cases"].as_array().expect("cases").clone()
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u8)
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12,
        "{what}: kit {a} vs scikit-learn {b}"
    );
}

#[test]
fn report_matches_scikit_learn_in_every_case() {
    let cases = fixtures();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (labels, predicted) = (bytes(&case["labels"]), bytes(&case["predicted"]));
        let report = ClassificationReport::new(&labels, &predicted).unwrap();
        let ours = report.to_json();
        let theirs = &case["report"];
        for key in CLASS_NAMES
            .iter()
            .copied()
            .chain(["macro avg", "weighted avg"])
        {
            for field in ["precision", "recall", "f1-score", "support"] {
                close(
                    ours[key][field].as_f64().unwrap(),
                    theirs[key][field].as_f64().unwrap(),
                    &format!("{name} / {key} / {field}"),
                );
            }
        }
        close(
            ours["accuracy"].as_f64().unwrap(),
            theirs["accuracy"].as_f64().unwrap(),
            name,
        );
        assert_eq!(
            report.to_text(),
            case["report_text"].as_str().unwrap(),
            "text layout of {name}"
        );

        let m = metrics::confusion_matrix(&labels, &predicted).unwrap();
        let expected: Vec<Vec<u64>> = case["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect()
            })
            .collect();
        for (row, exp) in m.iter().zip(&expected) {
            assert_eq!(&row[..], &exp[..], "{name} confusion matrix");
        }

        let probs: Vec<[f64; NUM_CLASSES]> = case["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let v: Vec<f64> = r
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                v.try_into().unwrap()
            })
            .collect();
        let ll = metrics::log_loss(&labels, &probs).unwrap();
        assert!(
            (ll - case["log_loss"].as_f64().unwrap()).abs() < 1e-9,
            "{name} log loss {ll}"
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(metrics::accuracy(&[1, 2], &[1]).is_err());
    assert!(metrics::accuracy(&[], &[]).is_err());
    assert!(metrics::confusion_matrix(&[1, 12], &[1, 1]).is_err());
    assert!(metrics::log_loss(&[1], &[[0.0; NUM_CLASSES]]).is_err());
    let rows = metrics::normalize_rows(&metrics::confusion_matrix(&[0, 0, 1], &[0, 1, 1]).unwrap());
    assert_eq!(
        (rows[0][0], rows[0][1], rows[1][1], rows[2][2]),
        (0.5, 0.5, 1.0, 0.0)
    );
    let html = ClassificationReport::new(&[0, 1], &[0, 1])
        .unwrap()
        .to_html()
        .0;
    assert!(
        html.starts_with("<table>")
            && html.contains("ankle_boots")
            && html.contains("weighted avg")
    );
}

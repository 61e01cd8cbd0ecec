//! Stratified k-fold splits, as scikit-learn's `StratifiedKFold` makes them.

use crate::data::NUM_CLASSES;
use crate::error::{Error, Result};

/// Stratified k-fold split without shuffling (scikit-learn's `StratifiedKFold`): the images of
/// each class, in order, are cut into `k` nearly equal runs, and fold `f` holds run `f` of every
/// class. Returns `(training indices, held-out indices)` per fold.
pub fn stratified_folds(labels: &[u8], k: usize) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    if k < 2 {
        return Err(Error::param("folds", format!("{k} must be at least 2")));
    }
    let mut fold_of = vec![0usize; labels.len()];
    for class in 0..NUM_CLASSES as u8 {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if !members.is_empty() && members.len() < k {
            return Err(Error::param(
                "folds",
                format!(
                    "class {class} has {} images, fewer than the {k} folds",
                    members.len()
                ),
            ));
        }
        for (j, &i) in members.iter().enumerate() {
            fold_of[i] = j * k / members.len();
        }
    }
    Ok((0..k)
        .map(|f| {
            let (held, kept): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&i| fold_of[i] == f);
            (kept, held)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_disjoint_and_cover_the_set() {
        let labels: Vec<u8> = (0..300).map(|i| (i % 10) as u8).collect();
        let folds = stratified_folds(&labels, 3).unwrap();
        let mut seen = vec![0; labels.len()];
        for (train, held) in &folds {
            assert_eq!(train.len() + held.len(), labels.len());
            assert_eq!(held.len(), 100);
            for &i in held {
                seen[i] += 1;
                assert!(!train.contains(&i));
            }
            let mut per_class = [0; 10];
            for &i in held {
                per_class[labels[i] as usize] += 1;
            }
            assert_eq!(per_class, [10; 10], "each class split evenly");
        }
        assert!(seen.iter().all(|&c| c == 1), "each image held out once");
        assert!(stratified_folds(&labels, 1).is_err());
        assert!(stratified_folds(&[0, 0, 1], 3).is_err());
    }
}

//! A bounded max-heap of (distance, index) pairs: the k best candidates of one query
//! (the same sift order as covertreex/engines/heap.py, so equal keys land in the same slots).

/// Ordering by (distance, index): is (d1, i1) after (d2, i2)?
fn worse(d1: f64, i1: i64, d2: f64, i2: i64) -> bool {
    d1 > d2 || (d1 == d2 && i1 > i2)
}

/// The k best (distance, index) pairs seen so far; the worst kept pair sits at the top.
#[derive(Debug, Clone)]
pub struct Heap {
    dist: Vec<f64>,
    index: Vec<i64>,
    size: usize,
}

impl Heap {
    /// An empty heap keeping at most `k` pairs (k >= 1).
    pub fn new(k: usize) -> Heap {
        Heap {
            dist: vec![0.0; k],
            index: vec![0; k],
            size: 0,
        }
    }

    pub fn clear(&mut self) {
        self.size = 0;
    }

    pub fn len(&self) -> usize {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn is_full(&self) -> bool {
        self.size == self.dist.len()
    }

    /// The distance of the worst kept pair (meaningful once the heap is full).
    pub fn worst_distance(&self) -> f64 {
        self.dist[0]
    }

    /// Insert (d, i) if it beats the worst kept pair; return whether it was pushed.
    pub fn offer(&mut self, d: f64, i: i64) -> bool {
        let k = self.dist.len();
        if self.size < k {
            let mut pos = self.size;
            self.size += 1;
            while pos > 0 {
                let parent = (pos - 1) / 2;
                if !worse(d, i, self.dist[parent], self.index[parent]) {
                    break;
                }
                self.dist[pos] = self.dist[parent];
                self.index[pos] = self.index[parent];
                pos = parent;
            }
            self.dist[pos] = d;
            self.index[pos] = i;
            return true;
        }
        if !worse(self.dist[0], self.index[0], d, i) {
            return false;
        }
        replace_top(&mut self.dist, &mut self.index, d, i);
        true
    }

    /// Write the kept pairs in (distance, index) order, padding the row with (-1, inf). A heapsort of a
    /// copy of the heap, O(k log k): the worst pair goes to the last slot, the worst of the rest before
    /// it, and so on (an insertion sort of the heap's array was O(k^2)).
    pub fn write_sorted(&self, out_i: &mut [i64], out_d: &mut [f64]) {
        out_i.fill(-1);
        out_d.fill(f64::INFINITY);
        out_i[..self.size].copy_from_slice(&self.index[..self.size]);
        out_d[..self.size].copy_from_slice(&self.dist[..self.size]);
        for end in (1..self.size).rev() {
            let (d, i) = (out_d[end], out_i[end]);
            out_d[end] = out_d[0];
            out_i[end] = out_i[0];
            replace_top(&mut out_d[..end], &mut out_i[..end], d, i);
        }
    }
}

/// Put (d, i) in place of the top of the heap held in `dist` and `index`: the hole sifts down (the
/// worse child moves up) to where (d, i) belongs.
fn replace_top(dist: &mut [f64], index: &mut [i64], d: f64, i: i64) {
    let n = dist.len();
    let mut pos = 0;
    loop {
        let mut child = 2 * pos + 1;
        if child >= n {
            break;
        }
        if child + 1 < n && worse(dist[child + 1], index[child + 1], dist[child], index[child]) {
            child += 1;
        }
        if !worse(dist[child], index[child], d, i) {
            break;
        }
        dist[pos] = dist[child];
        index[pos] = index[child];
        pos = child;
    }
    dist[pos] = d;
    index[pos] = i;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(heap: &Heap, k: usize) -> (Vec<i64>, Vec<f64>) {
        let (mut i, mut d) = (vec![0; k], vec![0.0; k]);
        heap.write_sorted(&mut i, &mut d);
        (i, d)
    }

    #[test]
    fn keeps_the_k_smallest_by_distance_then_index() {
        let mut heap = Heap::new(3);
        for (d, i) in [(5.0, 0), (1.0, 1), (3.0, 2), (1.0, 3), (0.5, 4), (3.0, 1)] {
            heap.offer(d, i);
        }
        let (i, d) = sorted(&heap, 3);
        assert_eq!(i, vec![4, 1, 3]);
        assert_eq!(d, vec![0.5, 1.0, 1.0]);
        assert!(heap.is_full());
        assert_eq!(heap.worst_distance(), 1.0);
        // A tie with the worst pair and a larger index is not pushed; a smaller index is.
        assert!(!heap.offer(1.0, 7));
        assert!(heap.offer(1.0, 2));
        assert_eq!(sorted(&heap, 3).0, vec![4, 1, 2]);
    }

    #[test]
    fn writes_every_size_sorted_as_a_full_sort_would() {
        // Tie-heavy keys (few distinct distances) in a scrambled index order, k from 1 past the count.
        let pairs: Vec<(f64, i64)> = (0..300i64)
            .map(|i| (((i * 7919) % 13) as f64, (i * 104_729) % 300))
            .collect();
        for k in [1, 2, 3, 50, 299, 300, 301] {
            let mut heap = Heap::new(k);
            for &(d, i) in &pairs {
                heap.offer(d, i);
            }
            let mut expected = pairs.clone();
            expected.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            expected.truncate(k);
            let (i, d) = sorted(&heap, k);
            let kept = expected.len();
            assert_eq!(
                i[..kept],
                expected.iter().map(|p| p.1).collect::<Vec<_>>()[..],
                "k = {k}"
            );
            assert_eq!(
                d[..kept],
                expected.iter().map(|p| p.0).collect::<Vec<_>>()[..],
                "k = {k}"
            );
            assert!(i[kept..].iter().all(|&v| v == -1));
        }
    }

    #[test]
    fn pads_short_rows() {
        let mut heap = Heap::new(4);
        assert!(heap.is_empty());
        heap.offer(2.0, 9);
        let (i, d) = sorted(&heap, 4);
        assert_eq!(i, vec![9, -1, -1, -1]);
        assert_eq!(d[0], 2.0);
        assert!(d[1..].iter().all(|v| v.is_infinite()));
        heap.clear();
        assert_eq!(heap.len(), 0);
    }
}

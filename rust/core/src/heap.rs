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
        let mut pos = 0;
        loop {
            let mut child = 2 * pos + 1;
            if child >= k {
                break;
            }
            if child + 1 < k
                && worse(
                    self.dist[child + 1],
                    self.index[child + 1],
                    self.dist[child],
                    self.index[child],
                )
            {
                child += 1;
            }
            if !worse(self.dist[child], self.index[child], d, i) {
                break;
            }
            self.dist[pos] = self.dist[child];
            self.index[pos] = self.index[child];
            pos = child;
        }
        self.dist[pos] = d;
        self.index[pos] = i;
        true
    }

    /// Write the kept pairs in (distance, index) order, padding the row with (-1, inf).
    pub fn write_sorted(&self, out_i: &mut [i64], out_d: &mut [f64]) {
        out_i.fill(-1);
        out_d.fill(f64::INFINITY);
        out_i[..self.size].copy_from_slice(&self.index[..self.size]);
        out_d[..self.size].copy_from_slice(&self.dist[..self.size]);
        for j in 1..self.size {
            let (d, i) = (out_d[j], out_i[j]);
            let mut pos = j;
            while pos > 0 && worse(out_d[pos - 1], out_i[pos - 1], d, i) {
                out_d[pos] = out_d[pos - 1];
                out_i[pos] = out_i[pos - 1];
                pos -= 1;
            }
            out_d[pos] = d;
            out_i[pos] = i;
        }
    }
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

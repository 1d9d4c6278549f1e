//! Deterministic helpers to turn fuzz bytes into a byte stream cut at
//! arbitrary points.

/// xorshift64: a deterministic sequence from a seed taken from the input.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u8) -> Self {
        // Never zero (xorshift's fixed point).
        Self(0x9e37_79b9_7f4a_7c15 ^ u64::from(seed) << 8 | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Cuts `data` into consecutive non-empty pieces whose lengths come from
/// `seed`: seed 0 hands the whole stream over at once; otherwise pieces are
/// 1 to `seed` bytes long, so every packet boundary, and every point inside
/// a fixed header, is eventually a cut.
pub(crate) fn pieces(data: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut rng = Rng::new(seed);
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if seed == 0 {
            rest.len()
        } else {
            1 + (rng.next() % u64::from(seed)) as usize
        };
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_data_in_order() {
        let data: Vec<u8> = (0..=255).collect();
        for seed in [0, 1, 2, 7, 255] {
            let joined: Vec<u8> = pieces(&data, seed).flatten().copied().collect();
            assert_eq!(joined, data, "seed {seed}");
            assert!(pieces(&data, seed).all(|p| !p.is_empty()));
        }
        assert_eq!(pieces(&data, 0).count(), 1);
        assert_eq!(pieces(&data, 1).count(), 256);
    }
}

//! The control-block parser over a fake target memory, at both pointer widths.

use super::*;

/// A flat target memory from `base`; reads outside it fail, as a probe's do.
pub(crate) struct FakeMemory {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl TargetMemory for FakeMemory {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RigError> {
        let at = addr
            .checked_sub(self.base)
            .filter(|a| a + buf.len() as u64 <= self.bytes.len() as u64)
            .ok_or_else(|| RigError::Device(format!("fake: no memory at {addr:#x}")))?;
        buf.copy_from_slice(&self.bytes[at as usize..at as usize + buf.len()]);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), RigError> {
        let at = (addr - self.base) as usize;
        self.bytes[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// A target with a control block at `base + 0x100`: one up channel "Terminal"
/// (ring of `size` at `base + 0x400`), one down channel, the name at `base + 0x40`.
pub(crate) fn target(base: u64, word: u64, size: u64) -> FakeMemory {
    let mut bytes = vec![0u8; 0x400 + size as usize];
    let put = |bytes: &mut Vec<u8>, at: u64, v: u64| {
        let at = (at - base) as usize;
        bytes[at..at + word as usize].copy_from_slice(&v.to_le_bytes()[..word as usize]);
    };
    bytes[0x40..0x49].copy_from_slice(b"Terminal\0");
    let cb = base + 0x100;
    bytes[0x100..0x110].copy_from_slice(ID);
    put(&mut bytes, cb + 16, 1);
    put(&mut bytes, cb + 16 + word, 1);
    let ch = cb + 16 + 2 * word;
    put(&mut bytes, ch, base + 0x40);
    put(&mut bytes, ch + word, base + 0x400);
    put(&mut bytes, ch + 2 * word, size);
    FakeMemory { base, bytes }
}

/// The target "prints" `text` into channel 0 as rtt-target does (wrapping).
pub(crate) fn print(mem: &mut FakeMemory, word: u64, text: &[u8]) {
    let ch = (0x100 + 16 + 2 * word) as usize;
    let w = word as usize;
    let get = |b: &[u8], at: usize| word_at(b, at, word);
    let size = get(&mem.bytes, ch + 2 * w);
    let mut write = get(&mem.bytes, ch + 3 * w);
    for &b in text {
        mem.bytes[0x400 + write as usize] = b;
        write = (write + 1) % size;
    }
    mem.bytes[ch + 3 * w..ch + 4 * w].copy_from_slice(&write.to_le_bytes()[..w]);
}

fn in_target(mem: &FakeMemory) -> impl Fn(u64, u64) -> bool {
    let (a, b) = (mem.base, mem.base + mem.bytes.len() as u64);
    move |addr, len| addr >= a && addr + len <= b
}

#[test]
fn parses_and_drains_at_both_widths() {
    for (base, word) in [(0x2000_0000u64, 4u64), (0x7f00_0000_0000, 8)] {
        let mut mem = target(base, word, 16);
        let found: Vec<usize> = id_offsets(&mem.bytes).collect();
        assert_eq!(found, [0x100]);
        let readable = in_target(&mem);
        let cb = ControlBlock::parse(&mut mem, base + 0x100, word, &readable).expect("a block");
        assert_eq!(cb.address, base + 0x100);
        assert_eq!(cb.up.len(), 1);
        assert_eq!((cb.up[0].number, cb.up[0].name.as_str()), (0, "Terminal"));
        assert!(cb.read_up(&mut mem, 0).unwrap().is_empty(), "nothing yet");
        print(&mut mem, word, b"boot\n");
        assert_eq!(cb.read_up(&mut mem, 0).unwrap(), b"boot\n");
        // Through a 16-byte ring: the read returns them in order, across
        // the wrap, after a first read freed the space.
        let mut mem2 = target(base, word, 16);
        print(&mut mem2, word, b"0123456789");
        assert_eq!(cb.read_up(&mut mem2, 0).unwrap(), b"0123456789");
        print(&mut mem2, word, b"abcdefgh");
        assert_eq!(cb.read_up(&mut mem2, 0).unwrap(), b"abcdefgh", "wrapped");
        assert!(
            cb.read_up(&mut mem2, 0).unwrap().is_empty(),
            "read offset written back"
        );
        assert!(cb.read_up(&mut mem2, 1).is_err(), "no channel 1");
    }
}

#[test]
fn refuses_false_matches() {
    let base = 0x2000_0000;
    let readable = |a: u64, l: u64| a >= base && a + l <= base + 0x410;
    // Not the id.
    let mut mem = target(base, 4, 16);
    mem.bytes[0x100] = b'X';
    assert!(ControlBlock::parse(&mut mem, base + 0x100, 4, &readable).is_none());
    // Absurd channel counts.
    let mut mem = target(base, 4, 16);
    mem.bytes[0x110..0x114].copy_from_slice(&1000u32.to_le_bytes());
    assert!(ControlBlock::parse(&mut mem, base + 0x100, 4, &readable).is_none());
    // A ring buffer outside the target's writable memory.
    let mut mem = target(base, 4, 16);
    mem.bytes[0x11c..0x120].copy_from_slice(&0x1000u32.to_le_bytes());
    assert!(ControlBlock::parse(&mut mem, base + 0x100, 4, &readable).is_none());
    // No channel initialised yet.
    let mut mem = target(base, 4, 16);
    mem.bytes[0x11c..0x120].fill(0);
    assert!(ControlBlock::parse(&mut mem, base + 0x100, 4, &readable).is_none());
    // Corrupt offsets are the reader's error.
    let mut mem = target(base, 4, 16);
    let cb = ControlBlock::parse(&mut mem, base + 0x100, 4, &readable).unwrap();
    mem.bytes[0x124..0x128].copy_from_slice(&99u32.to_le_bytes());
    assert!(cb
        .read_up(&mut mem, 0)
        .unwrap_err()
        .to_string()
        .contains("corrupt"));
}

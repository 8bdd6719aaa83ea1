//! Block storage under the fragment cache: a file, or a raw block device (an NVMe
//! namespace, local or attached over NVMe/TCP), read and written in whole 4 KiB
//! blocks at block-aligned offsets from 4 KiB-aligned memory, so that `O_DIRECT`
//! works and the page cache neither doubles the memory nor hides the device's speed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Bytes per block.
pub const BLOCK: usize = 4096;

/// One block of memory, aligned as `O_DIRECT` needs.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
pub struct Page(pub [u8; BLOCK]);

/// Whole blocks in aligned memory.
#[derive(Clone)]
pub struct Blocks(Vec<Page>);

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blocks({})", self.0.len())
    }
}

impl Blocks {
    /// `n` zeroed blocks.
    pub fn zeroed(n: usize) -> Self {
        Self(vec![Page([0; BLOCK]); n])
    }

    /// Number of blocks.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Block `i`.
    pub fn block(&self, i: usize) -> &[u8; BLOCK] {
        &self.0[i].0
    }

    /// Block `i`, mutable.
    pub fn block_mut(&mut self, i: usize) -> &mut [u8; BLOCK] {
        &mut self.0[i].0
    }

    /// All bytes.
    pub fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }

    /// All bytes, mutable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}

/// A device of fixed-size blocks addressed by number (LBA).
pub trait BlockDevice: Send + Sync + std::fmt::Debug {
    /// Blocks the device holds.
    fn block_count(&self) -> u64;

    /// Reads `buf.count()` blocks starting at `lba`.
    fn read_blocks(&self, lba: u64, buf: &mut Blocks) -> io::Result<()>;

    /// Writes `buf.count()` blocks starting at `lba`.
    fn write_blocks(&self, lba: u64, buf: &Blocks) -> io::Result<()>;

    /// Makes written blocks durable.
    fn flush(&self) -> io::Result<()>;

    /// Whether I/O bypasses the page cache (`O_DIRECT`).
    fn direct(&self) -> bool;
}

/// What kind of storage a [`FileDevice`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A regular file, created and sized by the cache.
    File,
    /// A block device (`/dev/nvme0n1`, `/dev/loop3`…), used whole.
    Raw,
}

/// A regular file or a block device, with `O_DIRECT` where the file system allows it.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    path: PathBuf,
    blocks: u64,
    kind: DeviceKind,
    direct: bool,
}

fn open(path: &Path, create: bool, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(create);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

impl FileDevice {
    /// Opens `path`: a block device is used whole (its size is the device's); a
    /// regular file is created if missing and sized to `size` bytes (rounded down to
    /// whole blocks). `O_DIRECT` is asked for and dropped only where the file system
    /// refuses it (tmpfs, for one). The process holds an exclusive lock on it while
    /// open: a second gateway on the same device (two replicas sharing a hostPath,
    /// say) is refused instead of overwriting the first one's blocks.
    pub fn open(path: &Path, size: u64) -> io::Result<Self> {
        let is_block_device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
        let kind = if is_block_device { DeviceKind::Raw } else { DeviceKind::File };
        let create = kind == DeviceKind::File;
        let (file, direct) = match open(path, create, true) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(path, create, false)?, false),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!("{} is in use by another skyshard process", path.display()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let blocks = match kind {
            DeviceKind::Raw => {
                use std::io::Seek as _;
                (&file).seek(io::SeekFrom::End(0))? / BLOCK as u64
            }
            DeviceKind::File => {
                let blocks = size / BLOCK as u64;
                if file.metadata()?.len() != blocks * BLOCK as u64 {
                    file.set_len(blocks * BLOCK as u64)?;
                }
                blocks
            }
        };
        if blocks == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: no whole 4 KiB block", path.display()),
            ));
        }
        Ok(Self { file, path: path.to_path_buf(), blocks, kind, direct })
    }

    /// File or raw device.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, lba: u64, n: usize) -> io::Result<u64> {
        match lba.checked_add(n as u64) {
            Some(end) if end <= self.blocks => Ok(lba * BLOCK as u64),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("blocks {lba}+{n} beyond the device's {}", self.blocks),
            )),
        }
    }
}

impl BlockDevice for FileDevice {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&self, lba: u64, buf: &mut Blocks) -> io::Result<()> {
        let offset = self.check(lba, buf.count())?;
        self.file.read_exact_at(buf.bytes_mut(), offset)
    }

    fn write_blocks(&self, lba: u64, buf: &Blocks) -> io::Result<()> {
        let offset = self.check(lba, buf.count())?;
        self.file.write_all_at(buf.bytes(), offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn direct(&self) -> bool {
        self.direct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        crate::testing::scratch_dir(&format!("device-{name}"))
    }

    /// A real block device: a loop device over a file, where this machine lets the
    /// test make one (root and `losetup`); otherwise it says why and does nothing.
    #[test]
    fn a_loop_device_is_used_whole_with_o_direct() {
        let dir = scratch("loop");
        let backing = dir.join("backing.img");
        std::fs::write(&backing, vec![0u8; 8 << 20]).expect("backing file");
        let attach = std::process::Command::new("losetup").args(["-f", "--show"]).arg(&backing).output();
        let dev = match attach {
            Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
            Ok(o) => {
                eprintln!(
                    "SKIPPED a_loop_device_is_used_whole_with_o_direct: losetup failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return;
            }
            Err(e) => {
                eprintln!("SKIPPED a_loop_device_is_used_whole_with_o_direct: no losetup: {e}");
                return;
            }
        };
        let result = std::panic::catch_unwind(|| {
            let d = FileDevice::open(&dev, 1).expect("open the loop device");
            assert_eq!((d.kind(), d.block_count()), (DeviceKind::Raw, 2048), "the size is the device's");
            assert!(d.direct(), "a block device takes O_DIRECT");
            let mut w = Blocks::zeroed(4);
            w.bytes_mut().iter_mut().enumerate().for_each(|(i, b)| *b = (i % 253) as u8);
            d.write_blocks(2044, &w).expect("write the last blocks");
            d.flush().expect("flush");
            let mut r = Blocks::zeroed(4);
            d.read_blocks(2044, &mut r).expect("read");
            assert_eq!(r.bytes(), w.bytes());
            assert!(d.read_blocks(2045, &mut r).is_err(), "past the end of the device");
        });
        let _ = std::process::Command::new("losetup").arg("-d").arg(&dev).status();
        // What went to the device is in the backing file.
        let backing_bytes = std::fs::read(&backing).expect("backing");
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
        assert_eq!(backing_bytes[2044 * BLOCK + 1], 1);
    }

    #[test]
    fn blocks_are_page_aligned_for_o_direct() {
        let b = Blocks::zeroed(3);
        assert_eq!(b.bytes().as_ptr() as usize % BLOCK, 0);
        assert_eq!(b.bytes().len(), 3 * BLOCK);
    }

    #[test]
    fn a_file_device_reads_back_what_was_written_and_refuses_blocks_past_its_end() {
        let dir = scratch("file");
        let path = dir.join("cache.img");
        let dev = FileDevice::open(&path, 16 * BLOCK as u64 + 100).expect("open");
        assert_eq!((dev.block_count(), dev.kind()), (16, DeviceKind::File));
        assert_eq!(std::fs::metadata(&path).expect("metadata").len(), 16 * BLOCK as u64);
        let mut w = Blocks::zeroed(2);
        w.bytes_mut().iter_mut().enumerate().for_each(|(i, b)| *b = (i % 251) as u8);
        dev.write_blocks(14, &w).expect("write");
        dev.flush().expect("flush");
        let mut r = Blocks::zeroed(2);
        dev.read_blocks(14, &mut r).expect("read");
        assert_eq!(r.bytes(), w.bytes());
        assert!(dev.write_blocks(15, &w).is_err(), "the last block plus one is past the end");
        assert!(dev.read_blocks(u64::MAX, &mut r).is_err(), "no overflow");
        drop(dev);
        // Reopened: same size, same bytes.
        let dev = FileDevice::open(&path, 16 * BLOCK as u64).expect("reopen");
        let busy = FileDevice::open(&path, 16 * BLOCK as u64).expect_err("a device is one process's");
        assert_eq!(busy.kind(), io::ErrorKind::ResourceBusy, "{busy}");
        let mut again = Blocks::zeroed(2);
        dev.read_blocks(14, &mut again).expect("read");
        assert_eq!(again.bytes(), w.bytes());
        assert!(FileDevice::open(&dir.join("tiny"), 100).is_err(), "less than a block");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

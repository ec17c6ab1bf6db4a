//! Where the results go (a locked file, or standard output), and the count of the bytes
//! that reached it, which lets the writer cut off a row torn by a failed write.

use std::io::Write;

use super::file::OutputFile;

/// Where the results go.
pub enum Sink {
    /// The results file, locked for this run.
    File(OutputFile),
    /// Standard output (`-o -`).
    Stdout,
}

impl Sink {
    /// Removes a results file that this run created and never wrote, when the job cannot
    /// start after all (its input cannot be read): nothing is left behind.
    pub fn discard_if_unused(self) {
        if let Sink::File(output) = self
            && output.file.metadata().is_ok_and(|m| m.len() == 0)
            && output.still_there()
        {
            let _ = std::fs::remove_file(&output.path);
        }
    }
}

/// The results file's writer: counts the bytes that reached it (from where it started),
/// and after a write failed, fails every later one, so that nothing lands after a torn row
/// is cut off (the CSV writer flushes what it holds when it is dropped).
pub struct Counted {
    out: Box<dyn Write + Send>,
    /// Offset in the file: where writing started, plus the bytes written since.
    pub(super) written: u64,
    failed: bool,
}

impl Counted {
    pub(super) fn new(out: Box<dyn Write + Send>) -> Counted {
        Counted {
            out,
            written: 0,
            failed: false,
        }
    }
}

impl Write for Counted {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write of the results failed",
            ));
        }
        let written = self.out.write(bytes);
        match &written {
            Ok(n) => self.written += *n as u64,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => self.failed = true,
        }
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Err(std::io::Error::other(
                "an earlier write of the results failed",
            ));
        }
        self.out.flush()
    }
}

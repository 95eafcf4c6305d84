//! The bytes of the file served: read whole during the lookup when the file
//! is small, streamed from the handle opened there when it is not.
//!
//! A small file (up to [`SMALL_FILE`]) is read in the same trip to the
//! blocking pool as its lookup, open and `fstat`, so that the common answer
//! (a stylesheet, a script, an icon) costs one hand-off to another thread
//! and back instead of one per file system call. A larger file is never
//! held whole: it streams from the already opened handle in chunks of
//! [`CHUNK`], each read a trip of its own, as it did before.

use std::fs::{File, Metadata};
use std::io::{self, Read, SeekFrom};
use std::ops::RangeInclusive;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use crate::body::ResponseBody;

/// The largest file read whole during its lookup: 64 KiB, the size of one
/// streamed chunk. Such a file took one read when streamed too, so reading
/// it early holds no more memory per request than its stream would have;
/// past it, memory per connection would grow with the file.
pub(super) const SMALL_FILE: u64 = 64 * 1024;

/// The size of each read of a streamed file.
const CHUNK: usize = 64 * 1024;

/// What the lookup leaves of the file to send.
#[derive(Debug)]
pub(super) enum Content {
    /// Its bytes, read whole.
    Read(Bytes),
    /// Its open handle, read when the body is sent, and the size `fstat`
    /// gave.
    Open(File, u64),
}

impl Content {
    /// The content of the open `file` whose `fstat` is `metadata`: read
    /// whole when `read_small` and the file is at most [`SMALL_FILE`].
    /// Blocks: call it on the blocking pool.
    pub(super) fn of(file: File, metadata: &Metadata, read_small: bool) -> io::Result<Content> {
        let size = metadata.len();
        if !read_small || size > SMALL_FILE {
            return Ok(Content::Open(file, size));
        }
        // `size` is at most SMALL_FILE, so the cast cannot truncate.
        let mut bytes = Vec::with_capacity(size as usize);
        // No more than fstat said: a file growing meanwhile is cut where
        // its Content-Length was taken.
        file.take(size).read_to_end(&mut bytes)?;
        Ok(Content::Read(Bytes::from(bytes)))
    }

    /// The length of the content: of the bytes read (a file that shrank
    /// before it was read is served as read), or the size of an open file.
    pub(super) fn len(&self) -> u64 {
        match self {
            Content::Read(bytes) => bytes.len() as u64,
            Content::Open(_, size) => *size,
        }
    }

    /// The body with the bytes of `range` (inclusive, within
    /// [`Content::len`]; `None` for all of them).
    pub(super) async fn body(self, range: Option<RangeInclusive<u64>>) -> io::Result<ResponseBody> {
        let (start, count) = match &range {
            Some(range) => (*range.start(), range.end() - range.start() + 1),
            None => (0, self.len()),
        };
        match self {
            Content::Read(bytes) => {
                let (start, end) = (start as usize, (start + count) as usize);
                Ok(ResponseBody::full(bytes.slice(start..end.min(bytes.len()))))
            }
            Content::Open(file, _) => {
                let mut file = tokio::fs::File::from_std(file);
                if start > 0 {
                    file.seek(SeekFrom::Start(start)).await?;
                }
                let chunks = ReaderStream::with_capacity(file.take(count), CHUNK);
                Ok(ResponseBody::stream(StreamBody::new(
                    chunks.map_ok(Frame::data),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &bytes).expect("write");
        (file, bytes)
    }

    fn content(path: &std::path::Path, read_small: bool) -> Content {
        let file = File::open(path).expect("open");
        let metadata = file.metadata().expect("fstat");
        Content::of(file, &metadata, read_small).expect("content")
    }

    async fn collect(body: ResponseBody) -> Vec<u8> {
        body.collect().await.expect("body").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_small_file_is_read_whole_and_a_large_one_left_open() {
        let (small, small_bytes) = file_of(SMALL_FILE as usize);
        let content_small = content(small.path(), true);
        assert!(matches!(&content_small, Content::Read(b) if b[..] == small_bytes[..]));
        assert_eq!(content_small.len(), SMALL_FILE);

        let (large, _) = file_of(SMALL_FILE as usize + 1);
        let content_large = content(large.path(), true);
        assert!(matches!(content_large, Content::Open(_, n) if n == SMALL_FILE + 1));

        let head = content(small.path(), false);
        assert!(matches!(head, Content::Open(..)), "HEAD reads nothing");
    }

    #[tokio::test]
    async fn both_kinds_give_the_same_bytes_whole_and_in_ranges() {
        for len in [0, 5, SMALL_FILE as usize, 3 * CHUNK + 17] {
            let (file, bytes) = file_of(len);
            for read_small in [true, false] {
                let c = content(file.path(), read_small);
                let got = collect(c.body(None).await.expect("body")).await;
                assert!(got == bytes, "{len} bytes, read_small {read_small}");
                if len < 5 {
                    continue;
                }
                let c = content(file.path(), read_small);
                let range = 1..=(len as u64 - 2);
                let got = collect(c.body(Some(range)).await.expect("body")).await;
                assert!(got == bytes[1..len - 1], "{len} bytes ranged");
            }
        }
    }
}

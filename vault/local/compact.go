package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// compactTxSize bounds the bytes that CompactFile copies per transaction of the new file,
// so that a large file does not need one transaction of its whole size in memory.
const compactTxSize = 64 << 20

// CompactResult is the outcome of CompactFile.
type CompactResult struct {
	// SizeBefore and SizeAfter are the sizes of the old and of the new file, in bytes.
	SizeBefore, SizeAfter int64
}

// CompactFile copies the live rows of the store file at path into a new file, and renames
// the new file over path. bbolt frees the pages of deleted rows without overwriting them,
// so the old file can still contain deleted records and sealed values, and tenant keys of
// a file that held them before the keyring existed (format 1). The new file contains none
// of them. The keyring is left as it is.
//
// The file must exist and must not be open: CompactFile holds the file's lock throughout,
// and waits at most opts.Timeout for it. A crash before the rename leaves the old file in
// place, with a temporary file beside it that the next CompactFile removes.
//
// NOTE: the old file's blocks are freed, not overwritten. The filesystem, its snapshots
// and the disk itself may keep them, and so do backups of the file.
func CompactFile(ctx context.Context, path string, opts Options) (CompactResult, error) {
	res, err := compactFile(ctx, path, cmp.Or(opts.Timeout, DefaultTimeout))
	if err != nil {
		return res, fmt.Errorf("compacting vault %s: %w", path, err)
	}

	log := cmp.Or(opts.Logger, zap.NewNop())
	log.Info("vault file compacted", zap.String("path", path),
		zap.Int64("size_before", res.SizeBefore), zap.Int64("size_after", res.SizeAfter))
	return res, nil
}

// compactFile locks the file and compacts it.
func compactFile(ctx context.Context, path string, timeout time.Duration) (CompactResult,
	error) {
	if err := ctx.Err(); err != nil {
		return CompactResult{}, err
	}
	src, err := openDB(path, timeout, false)
	if err != nil {
		return CompactResult{}, err
	}
	defer src.Close()

	if err := src.View(checkVaultFile); err != nil {
		return CompactResult{}, err
	}
	before, err := fileSize(path)
	if err != nil {
		return CompactResult{}, err
	}
	if _, err := compactLocked(src, path, timeout); err != nil {
		return CompactResult{}, err
	}

	after, err := fileSize(path)
	return CompactResult{SizeBefore: before, SizeAfter: after}, err
}

// compactLocked copies the live rows of src, whose lock the caller holds, into a new file
// and renames it over path. replaced reports whether the new file is at path, which it can
// be even when err is not nil. From then on, src is a file that path no longer names, so
// the caller must close it and open path again before any write.
func compactLocked(src *bolt.DB, path string, timeout time.Duration) (replaced bool,
	err error) {
	tmp := path + ".compact"
	if err := copyLive(src, tmp, timeout); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	return true, syncDir(filepath.Dir(path))
}

// copyLive copies every bucket of src into a new file at tmp. A file left at tmp by an
// earlier compaction that crashed is removed first. No other process uses it, because
// the caller holds the lock of src.
func copyLive(src *bolt.DB, tmp string, timeout time.Duration) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the temporary file of an earlier compaction: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}

	// every transaction of Compact commits with an fsync, so the copy is on disk when
	// it returns
	err = bolt.Compact(dst, src, compactTxSize)
	if closeErr := dst.Close(); err == nil {
		err = closeErr
	}
	return err
}

// fileSize returns the size of the file at path.
func fileSize(path string) (int64, error) {
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// syncDir flushes a directory, so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

#ifndef CAIRN_FILESYNC_H
#define CAIRN_FILESYNC_H

/// Linux's file-system flushes that Swift's Glibc module leaves out (they need _GNU_SOURCE).

/// syncfs(2): flushes the file system `fd` is on. 0 or -1 (errno).
int cairn_syncfs(int fd);

/// sync_file_range(2) with SYNC_FILE_RANGE_WRITE over the whole file: starts write-back of its dirty pages
/// without waiting. 0 or -1 (errno).
int cairn_start_writeback(int fd);

#endif

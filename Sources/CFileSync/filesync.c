#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "cairn_filesync.h"

int cairn_syncfs(int fd) { return syncfs(fd); }

int cairn_start_writeback(int fd) { return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); }

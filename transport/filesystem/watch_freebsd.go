package filesystem

import "golang.org/x/sys/unix"

// openDirFlags opens the watched folder for kqueue.
const openDirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC

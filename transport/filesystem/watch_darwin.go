package filesystem

import "golang.org/x/sys/unix"

// openDirFlags opens the watched folder for events only.
const openDirFlags = unix.O_EVTONLY | unix.O_CLOEXEC

package filesystem

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// Kombu's defaults (kombu/transport/filesystem.py and virtual.Transport,
// 5.2.4).
const (
	defaultFolderIn        = "data_in"
	defaultFolderOut       = "data_out"
	defaultProcessedFolder = "processed"
	defaultPolling         = time.Second
	defaultRecover         = 5 * time.Second
)

// Options configure the filesystem transport. Relative folders are
// relative to the working directory, as in Kombu. Kombu creates no folder
// ("Both directories must be created manually"); neither do we: Dial fails
// with a clear error when one is missing.
type Options struct {
	// DataFolderIn is the folder consumers read messages from
	// (data_folder_in). Kombu's default: "data_in".
	DataFolderIn string
	// DataFolderOut is the folder publishers write messages to
	// (data_folder_out). Kombu's default: "data_out". Give both the same
	// folder for one process (or a Python and a Go one) to consume what the
	// other publishes.
	DataFolderOut string
	// StoreProcessed keeps every acknowledged (or rejected) message file
	// in ProcessedFolder instead of deleting it (store_processed). Kombu's
	// default: false.
	StoreProcessed bool
	// ProcessedFolder receives the processed files when StoreProcessed is
	// set (processed_folder). Kombu's default: "processed". It must be on
	// the same file system as DataFolderIn for the move to be a rename
	// (otherwise it is a copy and a delete).
	ProcessedFolder string
	// PollingInterval is how often consumers look for new files where the
	// folder cannot be watched (Kombu's polling_interval; Kombu always
	// polls). Default: 1s, Kombu's. With Watch (the default, on Linux,
	// macOS and FreeBSD) it is only the fallback: when the watch cannot be
	// set up or is lost.
	PollingInterval time.Duration
	// Watch wakes consumers through inotify (Linux) or kqueue (macOS,
	// FreeBSD) when a file arrives, instead of polling (option "watch",
	// ours; default true). False polls every PollingInterval, as Kombu.
	Watch bool
	// RecoverInterval is how often a connection looks for the claims of
	// dead connections (a consumer process that was killed) and puts their
	// messages back in their queues (option "recover_interval", ours;
	// default 5s). Kombu has no such thing: a killed Kombu consumer loses
	// the messages it had taken.
	RecoverInterval time.Duration
	// DeadLetterQueue receives unroutable messages (deadletter_queue).
	DeadLetterQueue string
	// NoRestoreOnClose leaves the unacknowledged messages of a closing
	// channel claimed instead of giving them back (restore_on_close=false);
	// the next recovery pass of any connection gives them back anyway.
	NoRestoreOnClose bool
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns Kombu's defaults.
func DefaultOptions() Options {
	return Options{
		DataFolderIn:    defaultFolderIn,
		DataFolderOut:   defaultFolderOut,
		ProcessedFolder: defaultProcessedFolder,
		PollingInterval: defaultPolling,
		Watch:           true,
		RecoverInterval: defaultRecover,
	}
}

// ParseConfig reads a transport.Config: the URL ("filesystem://", no
// host) and the transport options data_folder_in, data_folder_out,
// store_processed, processed_folder, polling_interval (Kombu's), watch and
// recover_interval (ours), deadletter_queue and restore_on_close (the
// virtual channel's). Unknown keys are errors.
func ParseConfig(cfg transport.Config) (Options, error) {
	o := DefaultOptions()
	r := optmap.New("filesystem", cfg.Options)
	r.String("data_folder_in", &o.DataFolderIn)
	r.String("data_folder_out", &o.DataFolderOut)
	r.Bool("store_processed", &o.StoreProcessed)
	r.String("processed_folder", &o.ProcessedFolder)
	r.Seconds("polling_interval", &o.PollingInterval)
	r.Bool("watch", &o.Watch)
	r.Seconds("recover_interval", &o.RecoverInterval)
	r.String("deadletter_queue", &o.DeadLetterQueue)
	restore := true
	r.Bool("restore_on_close", &restore)
	o.NoRestoreOnClose = !restore
	r.Always("confirm_publish", true, "a publish returns once the file is in the folder: only true")
	r.ConnectionKeys()
	if err := r.Err(); err != nil {
		return o, err
	}
	if cfg.Hostname != "" && cfg.Hostname != "localhost" {
		return o, fmt.Errorf("filesystem: the URL names host %q: filesystem:// takes no host (give the folders as data_folder_in and data_folder_out)", cfg.Hostname)
	}
	o.Logger = cfg.Logger
	return o, nil
}

// check validates o and makes its folders absolute.
func (o *Options) check() error {
	if o.DataFolderIn == "" || o.DataFolderOut == "" {
		return fmt.Errorf("filesystem: data_folder_in and data_folder_out must not be empty")
	}
	if o.StoreProcessed && o.ProcessedFolder == "" {
		return fmt.Errorf("filesystem: store_processed is set and processed_folder is empty")
	}
	if o.PollingInterval <= 0 {
		return fmt.Errorf("filesystem: polling_interval %v: want > 0", o.PollingInterval)
	}
	if o.RecoverInterval <= 0 {
		return fmt.Errorf("filesystem: recover_interval %v: want > 0", o.RecoverInterval)
	}
	for _, p := range []*string{&o.DataFolderIn, &o.DataFolderOut, &o.ProcessedFolder} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("filesystem: folder %q: %w", *p, err)
		}
		*p = abs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

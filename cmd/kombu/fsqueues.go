package main

import (
	"github.com/kombu-go/kombu/messaging"
	"github.com/kombu-go/kombu/transport"
	"github.com/kombu-go/kombu/transport/filesystem"
)

// filesystemQueues lists the queues that have files in data_folder_in
// (ready) or claimed by a connection (unacked): the folder is the only
// record of a filesystem queue.
func filesystemQueues(url string) (queuesJSON, error) {
	ep, err := messaging.ParseURL(url)
	if err != nil {
		return queuesJSON{}, err
	}
	opts := make(map[string]any, len(ep.Options))
	for k, v := range ep.Options {
		opts[k] = v
	}
	t, err := filesystem.New(transport.Config{Scheme: ep.Scheme, Hostname: ep.Hostname, Options: opts})
	if err != nil {
		return queuesJSON{}, err
	}
	stats, err := t.Queues()
	if err != nil {
		return queuesJSON{}, err
	}
	out := queuesJSON{Transport: "filesystem", Source: "folder " + t.Options().DataFolderIn, Queues: []queueJSON{}}
	for _, s := range stats {
		un := int64(s.Unacked)
		out.Queues = append(out.Queues, queueJSON{Name: s.Name, Exists: true, Messages: int64(s.Ready), Unacked: &un})
	}
	return out, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// mgmtClient reads queues from RabbitMQ's management HTTP API (the
// rabbitmq_management plugin), which is the only place a client can list
// queues and read their rates: AMQP 0-9-1 has no such method.
type mgmtClient struct {
	base       string // scheme://host:port[/path], no trailing slash
	shown      string // base without credentials, for messages
	user, pass string
	vhost      string
	http       *http.Client
}

// mgmtQueue is the part of /api/queues/<vhost> that queues and top use.
type mgmtQueue struct {
	Name      string         `json:"name"`
	Vhost     string         `json:"vhost"`
	Ready     int64          `json:"messages_ready"`
	Unacked   int64          `json:"messages_unacknowledged"`
	Consumers int            `json:"consumers"`
	State     string         `json:"state"`
	Durable   bool           `json:"durable"`
	Arguments map[string]any `json:"arguments"`
	IdleSince string         `json:"idle_since"`
	Type      string         `json:"type"`
	MsgStats  mgmtStats      `json:"message_stats"`
}

type mgmtStats struct {
	Publish        int64    `json:"publish"`
	PublishDetails mgmtRate `json:"publish_details"`
	DeliverGet     int64    `json:"deliver_get"`
	DeliverDetails mgmtRate `json:"deliver_get_details"`
	Ack            int64    `json:"ack"`
	AckDetails     mgmtRate `json:"ack_details"`
}

type mgmtRate struct {
	Rate float64 `json:"rate"`
}

// errNoManagement says the management API could not be used; its text
// tells the operator what to do.
type errNoManagement struct {
	url string
	err error
}

func (e *errNoManagement) Error() string {
	return fmt.Sprintf("the RabbitMQ management API at %s did not answer (%v): listing queues needs it "+
		"(enable it with `rabbitmq-plugins enable rabbitmq_management`, or pass --management-url), "+
		"or name the queues: kombu queues NAME...", e.url, e.err)
}

func (e *errNoManagement) Unwrap() error { return e.err }

// newMgmtClient derives the management API's address and credentials:
// --management-url if given (its user:password, else the AMQP URL's),
// else http://<the AMQP host>:15672 (http://127.0.0.1:15672 for a local
// broker). The virtual host is the AMQP URL's ("/" by default).
func newMgmtClient(amqpURL, mgmtURL string) (*mgmtClient, error) {
	eps, err := messaging.ParseURLs(amqpURL)
	if err != nil {
		return nil, err
	}
	ep := eps[0]
	c := &mgmtClient{user: firstNonEmpty(ep.UserID, "guest"), pass: ep.Password, vhost: ep.VirtualHost,
		http: &http.Client{Timeout: 5 * time.Second}}
	if ep.UserID == "" && ep.Password == "" {
		c.pass = "guest"
	}
	if c.vhost == "" {
		c.vhost = "/"
	}
	if mgmtURL == "" {
		mgmtURL = "http://" + net.JoinHostPort(firstNonEmpty(ep.Hostname, "127.0.0.1"), "15672")
	}
	u, err := url.Parse(mgmtURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("bad --management-url %q (want http://host:15672)", mgmtURL)
	}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		u.User = nil
	}
	c.base = strings.TrimRight(u.String(), "/")
	c.shown = c.base
	return c, nil
}

// get fetches path into v. Network errors and non-JSON answers become
// *errNoManagement; HTTP errors say what the API said.
func (c *mgmtClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &errNoManagement{url: c.shown, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &errNoManagement{url: c.shown, err: err}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("the RabbitMQ management API at %s refused user %q (401): pass credentials in --management-url or --url", c.shown, c.user)
	case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/api/queues/"):
		return fmt.Errorf("the RabbitMQ management API at %s knows no virtual host %q", c.shown, c.vhost)
	case resp.StatusCode != http.StatusOK:
		return &errNoManagement{url: c.shown, err: fmt.Errorf("HTTP %s", resp.Status)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &errNoManagement{url: c.shown, err: fmt.Errorf("not the management API: %v", err)}
	}
	return nil
}

// queues lists the virtual host's queues, sorted by name.
func (c *mgmtClient) queues(ctx context.Context) ([]mgmtQueue, error) {
	var qs []mgmtQueue
	err := c.get(ctx, "/api/queues/"+url.PathEscape(c.vhost)+"?sort=name", &qs)
	return qs, err
}

// isNoManagement reports whether err says the API is absent.
func isNoManagement(err error) bool {
	var e *errNoManagement
	return errors.As(err, &e)
}

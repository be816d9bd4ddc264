package celery

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kombu-go/kombu/messaging"
)

// ErrMalformed marks a task message this package cannot read: no task name
// or id, a body that is not [args, kwargs, embed] (protocol 2) or a task
// dict (protocol 1), or fields of the wrong type. Such messages go to the
// worker's decode-error path (see WorkerOptions.OnDecodeError).
var ErrMalformed = errors.New("celery: malformed task message")

// isoLayout is Python's datetime.isoformat() for an aware datetime with
// microseconds ("2026-11-21T10:10:36.005886+00:00"), what Celery writes in
// the eta and expires headers.
const isoLayout = "2006-01-02T15:04:05.000000-07:00"

// formatTime writes t as Celery does (UTC, with an offset).
func formatTime(t time.Time) string { return t.UTC().Format(isoLayout) }

// parseTime reads the ISO-8601 forms Celery and Python write: with or
// without fractional seconds, with an offset, "Z", or naive (read as UTC,
// Celery's default timezone).
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999-07:00",
		"2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: bad time %q", ErrMalformed, s)
}

// Task is a task request as the worker reads it from a message of either
// protocol (the fields of Celery's Request that handlers may need).
type Task struct {
	// ID is the task id (the "id" header).
	ID string
	// Name is the registered task name (the "task" header).
	Name   string
	Args   []any
	Kwargs map[string]any
	// Retries counts the earlier attempts (Task.request.retries).
	Retries int
	// ETA, when not zero, is when the task may run (eta or countdown).
	ETA time.Time
	// Expires, when not zero, is when the task is revoked if not started.
	Expires time.Time
	// TimeLimit and SoftTimeLimit come from the "timelimit" header ([hard,
	// soft] seconds); zero means the worker's or task's default.
	TimeLimit, SoftTimeLimit  time.Duration
	ParentID, RootID, GroupID string
	// ReplyTo and CorrelationID are where the RPC backend sends the result.
	ReplyTo, CorrelationID string
	// IgnoreResult asks the worker not to store the result.
	IgnoreResult bool
	// Origin names the client that sent the task.
	Origin string
	// Embed holds callbacks, errbacks, chain and chord, as received.
	Embed map[string]any
	// Headers are the message headers as received.
	Headers map[string]any
	// Protocol is 1 or 2.
	Protocol int
	// Exchange and RoutingKey say where the message was sent; Queue is
	// the routing key, as Celery reports it (delivery_info).
	Exchange, RoutingKey string
	// Priority of the message.
	Priority int
	// Hostname is the worker's node name.
	Hostname string
}

// decodeTask reads a Celery task message. body is the decoded payload.
func decodeTask(m *messaging.Message, body any) (*Task, error) {
	t := &Task{Headers: m.Headers, ReplyTo: m.Properties.ReplyTo, CorrelationID: m.Properties.CorrelationID,
		Exchange: m.DeliveryInfo.Exchange, RoutingKey: m.DeliveryInfo.RoutingKey, Priority: m.Properties.Priority}
	if _, ok := m.Headers["task"]; ok {
		t.Protocol = 2
		return t, t.fromV2(m.Headers, body)
	}
	t.Protocol = 1
	return t, t.fromV1(body)
}

func (t *Task) fromV2(h map[string]any, body any) error {
	var err error
	if t.Name, err = str(h, "task", true); err != nil {
		return err
	}
	if t.ID, err = str(h, "id", true); err != nil {
		return err
	}
	parts, ok := body.([]any)
	if !ok || len(parts) != 3 {
		return fmt.Errorf("%w: protocol 2 body is %T, not [args, kwargs, embed]", ErrMalformed, body)
	}
	if err := t.setArgs(parts[0], parts[1]); err != nil {
		return err
	}
	if parts[2] != nil {
		if t.Embed, ok = parts[2].(map[string]any); !ok {
			return fmt.Errorf("%w: embed is %T", ErrMalformed, parts[2])
		}
	}
	return t.common(h, "group")
}

func (t *Task) fromV1(body any) error {
	d, ok := body.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: no task header, and the body is %T, not a protocol 1 task", ErrMalformed, body)
	}
	var err error
	if t.Name, err = str(d, "task", true); err != nil {
		return err
	}
	if t.ID, err = str(d, "id", true); err != nil {
		return err
	}
	if err := t.setArgs(d["args"], d["kwargs"]); err != nil {
		return err
	}
	t.Embed = map[string]any{}
	for _, k := range []string{"callbacks", "errbacks", "chord"} {
		t.Embed[k] = d[k]
	}
	return t.common(d, "taskset")
}

// common reads the fields both protocols name alike.
func (t *Task) common(d map[string]any, groupKey string) error {
	var err error
	if t.Retries, err = integer(d, "retries"); err != nil {
		return err
	}
	for key, dst := range map[string]*time.Time{"eta": &t.ETA, "expires": &t.Expires} {
		s, err := str(d, key, false)
		if err != nil {
			return err
		}
		if s != "" {
			if *dst, err = parseTime(s); err != nil {
				return err
			}
		}
	}
	if tl, ok := d["timelimit"].([]any); ok && len(tl) == 2 {
		t.TimeLimit, t.SoftTimeLimit = seconds(tl[0]), seconds(tl[1])
	}
	for key, dst := range map[string]*string{"parent_id": &t.ParentID, "root_id": &t.RootID,
		groupKey: &t.GroupID, "origin": &t.Origin} {
		if *dst, err = str(d, key, false); err != nil {
			return err
		}
	}
	t.IgnoreResult, _ = d["ignore_result"].(bool)
	if t.RootID == "" {
		t.RootID = t.ID
	}
	return nil
}

func (t *Task) setArgs(args, kwargs any) error {
	switch a := args.(type) {
	case nil:
	case []any:
		t.Args = a
	default:
		return fmt.Errorf("%w: args is %T, not a list", ErrMalformed, args)
	}
	switch k := kwargs.(type) {
	case nil:
		t.Kwargs = map[string]any{}
	case map[string]any:
		t.Kwargs = k
	default:
		return fmt.Errorf("%w: kwargs is %T, not a dict", ErrMalformed, kwargs)
	}
	return nil
}

func str(d map[string]any, key string, required bool) (string, error) {
	switch v := d[key].(type) {
	case string:
		if v == "" && required {
			break
		}
		return v, nil
	case nil:
		if !required {
			return "", nil
		}
	default:
		return "", fmt.Errorf("%w: %s is %T, not a string", ErrMalformed, key, v)
	}
	return "", fmt.Errorf("%w: no %s", ErrMalformed, key)
}

func integer(d map[string]any, key string) (int, error) {
	v := d[key]
	if v == nil {
		return 0, nil
	}
	n, ok := Number(v)
	if !ok {
		return 0, fmt.Errorf("%w: %s is %T, not an integer", ErrMalformed, key, v)
	}
	return int(n), nil
}

// seconds reads a number of seconds (int or float), or 0.
func seconds(v any) time.Duration {
	d, _ := Seconds(v)
	return d
}

// secondsValue is d as Celery writes seconds: nil for 0, else a float.
func secondsValue(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d.Seconds()
}

// origin is Celery's "gen<pid>@<hostname>".
func origin() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("gen%d@%s", os.Getpid(), h)
}

// reprArgs is a short Python-like repr of args and kwargs, for the
// argsrepr and kwargsrepr headers (informational).
func reprArgs(args []any, kwargs map[string]any) (string, string) {
	var b strings.Builder
	b.WriteByte('(')
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(repr(a))
	}
	if len(args) == 1 {
		b.WriteByte(',')
	}
	b.WriteByte(')')
	var k strings.Builder
	k.WriteByte('{')
	i := 0
	for key, v := range kwargs {
		if i > 0 {
			k.WriteString(", ")
		}
		i++
		fmt.Fprintf(&k, "'%s': %s", key, repr(v))
	}
	k.WriteByte('}')
	return b.String(), k.String()
}

func repr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return "'" + x + "'"
	case bool:
		if x {
			return "True"
		}
		return "False"
	default:
		return fmt.Sprint(x)
	}
}

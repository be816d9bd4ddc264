package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/kombu-go/kombu/messaging"
)

// consumedJSON is one line of `kombu consume --json` (a contract: fields are
// only ever added).
type consumedJSON struct {
	Body            any            `json:"body"`
	BodyEncoding    string         `json:"body_encoding,omitempty"`
	ContentType     string         `json:"content_type"`
	ContentEncoding string         `json:"content_encoding"`
	Exchange        string         `json:"exchange"`
	RoutingKey      string         `json:"routing_key"`
	Priority        int            `json:"priority"`
	Redelivered     bool           `json:"redelivered"`
	Headers         map[string]any `json:"headers"`
	DeliveryTag     string         `json:"delivery_tag"`
	Error           string         `json:"error,omitempty"`
	// Added with issue 11: the message properties that are set.
	Properties map[string]any `json:"properties,omitempty"`
}

// propertiesJSON returns the properties of m that are set, under Kombu's
// names.
func propertiesJSON(m *messaging.Message) map[string]any {
	p := m.Properties
	out := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	set("correlation_id", p.CorrelationID)
	set("reply_to", p.ReplyTo)
	set("message_id", p.MessageID)
	set("type", p.Type)
	set("app_id", p.AppID)
	set("user_id", p.UserID)
	set("expiration", p.Expiration)
	if !p.Timestamp.IsZero() {
		out["timestamp"] = p.Timestamp.UTC().Format(time.RFC3339)
	}
	if p.DeliveryMode != 0 {
		out["delivery_mode"] = p.DeliveryMode
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// messageJSON renders a message; the body is decoded when the serializer
// allows (JSON values stay structured, text stays text), else base64.
func messageJSON(m *messaging.Message, decodeErr error) consumedJSON {
	out := consumedJSON{
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		Exchange: m.DeliveryInfo.Exchange, RoutingKey: m.DeliveryInfo.RoutingKey,
		Priority: m.Properties.Priority, Redelivered: m.DeliveryInfo.Redelivered,
		Headers: m.Headers, DeliveryTag: m.DeliveryTag(), Properties: propertiesJSON(m),
	}
	if out.Headers == nil {
		out.Headers = map[string]any{}
	}
	if decodeErr != nil {
		out.Error = decodeErr.Error()
	} else if v, err := m.Decode(); err == nil {
		switch b := v.(type) {
		case []byte:
			if utf8.Valid(b) {
				out.Body = string(b)
			} else {
				out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(b), "base64"
			}
		default:
			if _, err := json.Marshal(v); err == nil {
				out.Body = v
			}
		}
		if out.Body != nil {
			return out
		}
	}
	if utf8.Valid(m.Body) && decodeErr == nil {
		out.Body = string(m.Body)
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	return out
}

func decodeJSONArg(s string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

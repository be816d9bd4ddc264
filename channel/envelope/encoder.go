package envelope

// Encoder writes a run of envelopes, as [Append] does, and reuses what it
// wrote between the body and the delivery tag of the previous message
// when the next one differs from it only in body and delivery tag: a
// batch's messages usually do (same content type, same properties, same
// queue), and that middle is most of an envelope's encoding work after
// the body's base64 (measured: BenchmarkEncoderBatch against
// BenchmarkEncodeEnvelopeBatch). The output is byte for byte Append's.
//
// A message with headers or extra properties is written in full: maps
// cannot be compared for less than it costs to encode them.
//
// The zero Encoder is ready for use with body encoding "" (see [Encode]);
// [NewEncoder] sets one. An Encoder is not safe for concurrent use.
type Encoder struct {
	bodyEncoding string
	prev         Message // the fields of the cached middle (no body or tag)
	mid          []byte  // appendMiddle of prev; valid when ok
	ok           bool
}

// NewEncoder returns an Encoder for bodyEncoding, which [Encode]
// describes.
func NewEncoder(bodyEncoding string) *Encoder {
	return &Encoder{bodyEncoding: bodyEncoding}
}

// Reset makes e forget its cached middle and use bodyEncoding, keeping
// its buffer.
func (e *Encoder) Reset(bodyEncoding string) {
	e.bodyEncoding, e.ok, e.prev = bodyEncoding, false, Message{}
}

// Append appends m's envelope to dst, as [Append] does. On error dst is
// returned unchanged in length.
func (e *Encoder) Append(dst []byte, m *Message) ([]byte, error) {
	start := len(dst)
	b, err := appendBody(dst, m.Body, e.bodyEncoding)
	if err != nil {
		return dst[:start], err
	}
	if !e.ok || !sameMiddle(&e.prev, m) {
		e.ok = false
		if e.mid, err = appendMiddle(e.mid[:0], m, e.bodyEncoding); err != nil {
			return dst[:start], err
		}
		if len(m.Headers) == 0 && len(m.Properties.Extra) == 0 {
			e.prev = Message{ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
				Properties: m.Properties, DeliveryInfo: m.DeliveryInfo}
			e.prev.Properties.Extra, e.prev.DeliveryInfo.DeliveryTag = nil, ""
			e.ok = true
		}
	}
	b = append(b, e.mid...)
	return appendTail(b, m.DeliveryInfo.DeliveryTag), nil
}

// sameMiddle reports whether m's middle is p's: every field that
// appendMiddle reads is equal, and m has no maps.
func sameMiddle(p, m *Message) bool {
	a, b := &p.Properties, &m.Properties
	return len(m.Headers) == 0 && len(b.Extra) == 0 &&
		p.ContentType == m.ContentType && p.ContentEncoding == m.ContentEncoding &&
		p.DeliveryInfo.Exchange == m.DeliveryInfo.Exchange &&
		p.DeliveryInfo.RoutingKey == m.DeliveryInfo.RoutingKey &&
		p.DeliveryInfo.Redelivered == m.DeliveryInfo.Redelivered &&
		a.CorrelationID == b.CorrelationID && a.ReplyTo == b.ReplyTo &&
		a.MessageID == b.MessageID && a.Type == b.Type && a.AppID == b.AppID &&
		a.UserID == b.UserID && a.Timestamp.Equal(b.Timestamp) &&
		a.DeliveryMode == b.DeliveryMode && a.Expiration == b.Expiration &&
		a.Priority == b.Priority
}

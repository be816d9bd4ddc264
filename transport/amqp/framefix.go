package amqp

import (
	"encoding/binary"
	"net"
)

// pyamqp (Python Kombu's AMQP client) encodes a Python int outside the
// int32 range as field type 'L' (8 bytes, signed, big-endian), RabbitMQ
// passes it through, and amqp091-go does not know 'L': its reader fails
// with a frame error and closes the connection. One such header in a
// message would kill the connection at every redelivery. fixConn sits
// between the socket and amqp091's reader and rewrites the 'L' tags of
// content-header tables to 'l', amqp091's 8-byte signed integer: the same
// size and bytes, so nothing else in the stream moves.

const (
	frameHeaderLen   = 7
	frameTypeMethod  = 1
	frameTypeHeader  = 2
	tunePayloadLen   = 12
	maxFixedFrame    = 1 << 20 // larger header frames pass through unfixed
	propHeadersFlag  = 0x2000
	propCTypeFlag    = 0x8000
	propCEncodeFlag  = 0x4000
	maxFixTableDepth = 64
)

// fixConn is a net.Conn whose reads get the 'L' rewrite. Only amqp091's
// reader goroutine reads it.
//
// It also disables heartbeats when asked: amqp091 takes the broker's
// heartbeat when the client proposes 0, where pyamqp (and the AMQP spec's
// intent) disables them. With noHeartbeat, the fixer zeroes the heartbeat
// field of the broker's connection.tune, so amqp091 negotiates 0, answers
// tune-ok with 0 (the broker then sends none and expects none) and starts
// no heartbeat timer.
type fixConn struct {
	net.Conn
	f   frameFixer
	raw []byte
	err error
}

func newFixConn(c net.Conn, noHeartbeat bool) *fixConn {
	return &fixConn{Conn: c, raw: make([]byte, 32*1024), f: frameFixer{noHeartbeat: noHeartbeat}}
}

func (c *fixConn) Read(p []byte) (int, error) {
	f := &c.f
	for f.off == len(f.out) {
		if c.err != nil {
			return 0, c.err
		}
		f.out, f.off = f.out[:0], 0
		n, err := c.Conn.Read(c.raw)
		f.feed(c.raw[:n])
		if err != nil {
			c.err = err
		}
	}
	n := copy(p, f.out[f.off:])
	f.off += n
	return n, nil
}

// frameFixer is the streaming state machine: it passes frames through as
// their bytes arrive, except content-header frames, which it collects whole,
// fixes and then releases.
type frameFixer struct {
	started bool
	raw     bool // not AMQP frames (a protocol header answer): pass all
	// noHeartbeat: zero the heartbeat of the first connection.tune.
	noHeartbeat bool
	tune        bool // collecting connection.tune, not a content header
	hdr         []byte
	pass        int    // bytes of the current frame still to pass through
	collect     []byte // the header frame being collected
	need        int    // bytes the collected frame still needs
	out         []byte // ready for the reader, from off
	off         int
}

func (f *frameFixer) emit(b []byte) { f.out = append(f.out, b...) }

func (f *frameFixer) feed(b []byte) {
	if !f.started && len(b) > 0 {
		f.started = true
		f.raw = b[0] == 'A' // "AMQP\x00\x00\x09\x01": the server refused our version
	}
	if f.raw {
		f.emit(b)
		return
	}
	for len(b) > 0 {
		switch {
		case f.pass > 0:
			k := min(f.pass, len(b))
			f.emit(b[:k])
			f.pass -= k
			b = b[k:]
		case f.need > 0:
			k := min(f.need, len(b))
			f.collect = append(f.collect, b[:k]...)
			f.need -= k
			b = b[k:]
			if f.need == 0 {
				if f.tune {
					f.tune = false
					if zeroTuneHeartbeat(f.collect[frameHeaderLen : len(f.collect)-1]) {
						f.noHeartbeat = false
					}
				} else {
					fixHeaderFrame(f.collect[frameHeaderLen : len(f.collect)-1])
				}
				f.emit(f.collect)
				f.collect = f.collect[:0]
			}
		default:
			k := min(frameHeaderLen-len(f.hdr), len(b))
			f.hdr = append(f.hdr, b[:k]...)
			b = b[k:]
			if len(f.hdr) < frameHeaderLen {
				continue
			}
			size := int(binary.BigEndian.Uint32(f.hdr[3:7]))
			isTune := f.noHeartbeat && f.hdr[0] == frameTypeMethod && f.hdr[1] == 0 && f.hdr[2] == 0 &&
				size == tunePayloadLen
			if (f.hdr[0] == frameTypeHeader && size <= maxFixedFrame) || isTune {
				f.collect = append(f.collect[:0], f.hdr...)
				f.need = size + 1 // payload and frame-end octet
				f.tune = isTune
			} else {
				f.emit(f.hdr)
				f.pass = size + 1
			}
			f.hdr = f.hdr[:0]
		}
	}
}

// zeroTuneHeartbeat sets the heartbeat of a connection.tune payload
// (class 10, method 30: channel-max short, frame-max long, heartbeat short)
// to 0. It reports whether p was connection.tune.
func zeroTuneHeartbeat(p []byte) bool {
	if len(p) != tunePayloadLen || binary.BigEndian.Uint16(p[0:2]) != 10 || binary.BigEndian.Uint16(p[2:4]) != 30 {
		return false
	}
	p[10], p[11] = 0, 0
	return true
}

// fixHeaderFrame rewrites the 'L' tags in the headers table of a content
// header payload. Anything malformed is left alone for amqp091 to judge.
func fixHeaderFrame(p []byte) {
	// class-id(2) weight(2) body-size(8) flags(2)
	if len(p) < 14 {
		return
	}
	flags := binary.BigEndian.Uint16(p[12:14])
	i := 14
	if flags&0x0001 != 0 {
		return // continued flags: never sent by RabbitMQ for basic
	}
	for _, f := range []uint16{propCTypeFlag, propCEncodeFlag} {
		if flags&f != 0 {
			if i >= len(p) {
				return
			}
			i += 1 + int(p[i])
		}
	}
	if flags&propHeadersFlag == 0 || i+4 > len(p) {
		return
	}
	n := int(binary.BigEndian.Uint32(p[i : i+4]))
	if i+4+n > len(p) {
		return
	}
	fixTable(p[i+4:i+4+n], 0)
}

// fixTable walks a table body (name-value pairs). It returns false when it
// cannot parse it.
func fixTable(b []byte, depth int) bool {
	for len(b) > 0 {
		k := 1 + int(b[0])
		if k > len(b) {
			return false
		}
		n, ok := fixValue(b[k:], depth)
		if !ok {
			return false
		}
		b = b[k+n:]
	}
	return true
}

// fixArray walks an array body (values).
func fixArray(b []byte, depth int) bool {
	for len(b) > 0 {
		n, ok := fixValue(b, depth)
		if !ok {
			return false
		}
		b = b[n:]
	}
	return true
}

// fixValue fixes one typed value at b[0] and returns its length.
func fixValue(b []byte, depth int) (int, bool) {
	if len(b) < 1 || depth > maxFixTableDepth {
		return 0, false
	}
	size := 0
	switch b[0] {
	case 'V':
	case 't', 'b', 'B':
		size = 1
	case 's', 'u':
		size = 2
	case 'I', 'i', 'f':
		size = 4
	case 'D':
		size = 5
	case 'L':
		if len(b) < 9 {
			return 0, false
		}
		b[0] = 'l'
		size = 8
	case 'l', 'd', 'T':
		size = 8
	case 'S', 'x', 'A', 'F':
		if len(b) < 5 {
			return 0, false
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if n > len(b)-5 {
			return 0, false
		}
		body := b[5 : 5+n]
		switch b[0] {
		case 'A':
			if !fixArray(body, depth+1) {
				return 0, false
			}
		case 'F':
			if !fixTable(body, depth+1) {
				return 0, false
			}
		}
		return 5 + n, true
	default:
		return 0, false
	}
	if 1+size > len(b) {
		return 0, false
	}
	return 1 + size, true
}

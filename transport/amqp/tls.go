package amqp

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/kombu-go/kombu/internal/optmap"
	"github.com/kombu-go/kombu/transport"
)

// tlsConfig returns the TLS configuration of o: nil when TLS is off,
// otherwise a clone of o.TLS (or a new configuration) adjusted by o.SSL,
// whose files it reads.
func tlsConfig(o *Options) (*tls.Config, error) {
	if o.TLS == nil && o.SSL == nil {
		return nil, nil
	}
	var cfg *tls.Config
	if o.TLS != nil {
		cfg = o.TLS.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	so := o.SSL
	if so == nil {
		so = &SSLOptions{}
	}
	t := optmap.TLS{CACerts: so.CACerts, CertFile: so.CertFile, KeyFile: so.KeyFile,
		ServerHostname: so.ServerHostname}
	switch so.CertReqs {
	case "", "CERT_REQUIRED", "CERT_OPTIONAL":
		// A client always gets the server's certificate: optional and
		// required verify alike, as in Python.
	case "CERT_NONE":
		t.CertReqs = "none"
	default:
		return nil, &transport.OptionError{Transport: "amqp", Key: "ssl_cert_reqs", Value: so.CertReqs,
			Reason: "want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE"}
	}
	if so.CheckHostname != nil {
		t.CheckHostname, t.CheckHostnameSet = *so.CheckHostname, true
	}
	if cfg.ServerName == "" && so.ServerHostname == "" {
		cfg.ServerName = o.Hostname
	}
	if err := t.Apply("amqp", cfg, true, true); err != nil {
		return nil, err
	}
	return cfg, nil
}

func tlsClient(ctx context.Context, nc net.Conn, s *settings) (net.Conn, error) {
	tc := tls.Client(nc, s.tls.Clone())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

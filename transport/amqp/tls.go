package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"

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
	fail := func(k string, v any, reason string) error {
		return &transport.OptionError{Transport: "amqp", Key: k, Value: v, Reason: reason}
	}
	if so.CACerts != "" {
		pem, err := os.ReadFile(so.CACerts)
		if err != nil {
			return nil, fail("ssl_ca_certs", so.CACerts, err.Error())
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fail("ssl_ca_certs", so.CACerts, "the file holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if so.CertFile != "" || so.KeyFile != "" {
		key := so.KeyFile
		if key == "" {
			key = so.CertFile // Python accepts the key inside the cert file
		}
		cert, err := tls.LoadX509KeyPair(so.CertFile, key)
		if err != nil {
			return nil, fail("ssl_certfile", so.CertFile, "with ssl_keyfile "+key+": "+err.Error())
		}
		// The ssl keys name the client certificate: it replaces any in TLS.
		cfg.Certificates = []tls.Certificate{cert}
	}
	switch so.CertReqs {
	case "", "CERT_REQUIRED", "CERT_OPTIONAL":
		// A client always gets the server's certificate: optional and
		// required verify alike, as in Python.
	case "CERT_NONE":
		cfg.InsecureSkipVerify = true
	default:
		return nil, fail("ssl_cert_reqs", so.CertReqs, "want CERT_REQUIRED, CERT_OPTIONAL or CERT_NONE")
	}
	if so.ServerHostname != "" {
		cfg.ServerName = so.ServerHostname
	}
	if cfg.ServerName == "" {
		cfg.ServerName = o.Hostname
	}
	if so.CheckHostname != nil && !*so.CheckHostname && !cfg.InsecureSkipVerify {
		// Verify the chain but not the name, as Python's check_hostname=False.
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("amqp: TLS peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
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

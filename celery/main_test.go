package celery_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	os.Setenv("KOMBU_HUB_CHECKOWNER", "1")
	goleak.VerifyTestMain(m)
}

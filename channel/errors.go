package channel

import "errors"

// ErrConsumerTagInUse is returned by Consume for a consumer tag already
// used on the channel.
var ErrConsumerTagInUse = errors.New("channel: consumer tag in use")

package blend

import (
	"context"
	"errors"
)

// Check reports whether the engine serves: its model is loaded.
func (e *Engine) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e == nil || e.st == nil || e.st.m == nil {
		return errors.New("blend: engine has no model loaded")
	}
	return nil
}

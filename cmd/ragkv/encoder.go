package main

import (
	"errors"
	"io"

	"github.com/ragkv/ragkv/model/encoder"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// openEncoderEmbedder opens an in-engine sentence encoder named by an --embeddings value
// of the form gguf:FILE[,pool=mean|cls|last][,max=N][,prefix=TEXT][,query-prefix=TEXT][,eos=true] (or
// hf:DIR...). ok is false for any other value (a GloVe file), which the caller handles.
// Errors name flag.
func openEncoderEmbedder(spec, flag string) (e *encoder.Embedder, ok bool, err error) {
	path, o, ok, err := encoder.ParseSpec(spec)
	if !ok {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, flagErr(flag, "%v", err)
	}
	if e, err = encoder.NewEmbedder(path, o); err != nil {
		return nil, true, flagErr(flag, "%v", err)
	}
	return e, true, nil
}

// closeEmbedders closes the embedders that hold resources (in-engine encoders).
func closeEmbedders(embs []embed.Embedder) error {
	var errs []error
	for _, e := range embs {
		if c, ok := e.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// closers closes each in order.
type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

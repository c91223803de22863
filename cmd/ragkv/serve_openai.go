package main

import (
	"context"
	"io"
	"net"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/openai"
)

// openaiConfig is the `openai:` section of the serve configuration: the OpenAI-compatible
// HTTP API (package server/openai), on by default whenever a model is loaded.
type openaiConfig struct {
	// Listen is its address (default 127.0.0.1:7433; empty: off).
	Listen string `yaml:"listen"`
	// ModelName is the model id clients send (default: the model file's name).
	ModelName string `yaml:"model_name"`
	// ChatTemplate is a Jinja chat template file that replaces the model's own.
	ChatTemplate string `yaml:"chat_template"`
}

func init() {
	f := serveCmd.Flags()
	oc := &serveCfg.OpenAI
	oc.Listen = "127.0.0.1:7433"
	f.StringVar(&oc.Listen, "openai-listen", oc.Listen, "OpenAI-compatible HTTP API listen address (served when --model is given); empty disables it")
	f.StringVar(&oc.ModelName, "openai-model-name", "", "model id of the OpenAI API (default: the model file's name without extension)")
	f.StringVar(&oc.ChatTemplate, "chat-template", "", "Jinja chat template file to use instead of the model's own")
	serveComponents = append(serveComponents, serveComponent{name: "openai", needs: []string{"inference", "retrieval"}, build: buildOpenAI})
}

// buildOpenAI is the "openai" serve component: it asks runServe for a listener.
func buildOpenAI(_ context.Context, cfg *serveConfig, env *serveEnv, deps map[string]any) (server.Option, any, io.Closer, error) {
	oc := cfg.OpenAI
	eng, _ := deps["inference"].(*blend.Engine)
	if eng == nil || oc.Listen == "" {
		return nil, nil, nil, nil
	}
	m := eng.Model()
	var tmpl *chat.Template
	var err error
	switch {
	case oc.ChatTemplate != "":
		tmpl, err = chat.LoadFile(oc.ChatTemplate, m.Tok)
		if err != nil {
			return nil, nil, nil, flagErr("chat-template", "%v", err)
		}
	default:
		if tmpl, err = chat.Load(m.Path, m.Tok); err != nil {
			return nil, nil, nil, flagErr("model", "chat template: %v", err)
		}
		if tmpl.IsPlain() && cfg.Inference.Tokenizer != "" {
			if tmpl, err = chat.LoadTokenizerFile(cfg.Inference.Tokenizer, m.Tok); err != nil {
				return nil, nil, nil, flagErr("tokenizer", "chat template: %v", err)
			}
		}
	}
	var ret *retrieval.Store
	if st, ok := deps["retrieval"].(*retrieval.Store); ok {
		ret = st
	}
	log := env.log.With("component", "openai")
	oo := openai.Options{Engine: eng, Template: tmpl, ModelName: oc.ModelName, Retrieval: ret, Logger: log}
	if env.trust != nil {
		oo.Auth = env.trust.auth
	}
	srv, err := openai.New(oo)
	if err != nil {
		return nil, nil, nil, err
	}
	log.Info("openai api ready", "model_name", srv.ModelName(), "chat_template", tmpl.Origin)
	env.listeners = append(env.listeners, serveListener{name: "openai", flag: "openai-listen", addr: oc.Listen,
		serve: func(l net.Listener) error { return srv.Serve(l) }, stop: srv.Shutdown})
	return nil, srv, nil, nil
}

package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// ragFields are the ragkv extras accepted at the top level of chat and completion
// bodies.
type ragFields struct {
	Documents []json.RawMessage `json:"documents"`
	Retrieval *struct {
		Collection string `json:"collection"`
		K          *int   `json:"k"`
		Mode       string `json:"mode"`
	} `json:"retrieval"`
	Blend *struct {
		Method string   `json:"method"`
		Ratio  *float64 `json:"ratio"`
	} `json:"blend"`
	Namespace string `json:"namespace"`
}

// samplingFields are the sampling and output fields shared by chat and completions.
type samplingFields struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Refused when set to something other than their neutral value.
	PresencePenalty  *float64        `json:"presence_penalty"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	LogitBias        map[string]any  `json:"logit_bias"`
	Tools            json.RawMessage `json:"tools"`
	BestOf           *int            `json:"best_of"`
}

type chatRequest struct {
	samplingFields
	ragFields
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Logprobs       *bool           `json:"logprobs"`
	TopLogprobs    *int            `json:"top_logprobs"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

type completionRequest struct {
	samplingFields
	ragFields
	Prompt   json.RawMessage `json:"prompt"`
	Logprobs *int            `json:"logprobs"`
	Echo     bool            `json:"echo"`
	Suffix   string          `json:"suffix"`
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// decode reads a JSON body into v: malformed JSON, wrong types and trailing data are
// 400s naming the field, an oversized body is a 413.
func decode(w http.ResponseWriter, r *http.Request, max int64, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("request body larger than %d bytes", max)}
		}
		return invalid("", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "empty request body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := strings.TrimPrefix(strings.TrimPrefix(te.Field, "samplingFields."), "ragFields.")
			return invalid(field, "field %q: expected %s, got JSON %s", field, jsonKind(te.Type), te.Value)
		case errors.As(err, &se):
			return invalid("", "malformed JSON at byte %d: %v", se.Offset, se)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("", "malformed JSON: unexpected end of the body")
		}
		return invalid("", "malformed JSON: %v", err)
	}
	if dec.More() {
		return invalid("", "malformed JSON: data after the request object")
	}
	return nil
}

// jsonKind names a Go type as the JSON it decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// stringOrList decodes a field that is a string or a list of strings (null: none).
func stringOrList(raw json.RawMessage, param string) ([]string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, invalid(param, "%s: expected a string or a list of strings", param)
	}
	return l, nil
}

// messageContent decodes a chat message's content: a string, or a list of text parts.
func messageContent(raw json.RawMessage, param string) (string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", invalid(param, "%s: expected a string or a list of content parts", param)
	}
	var sb strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", invalid(fmt.Sprintf("%s[%d].type", param, i), "content part type %q is not supported (text only)", p.Type)
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

// document is one entry of "documents": a text or a chunk-cache key.
type document struct {
	Text string
	Key  string
}

func parseDocuments(raws []json.RawMessage) ([]document, *apiError) {
	out := make([]document, 0, len(raws))
	for i, raw := range raws {
		param := fmt.Sprintf("documents[%d]", i)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s == "" {
				return nil, invalid(param, "%s is empty", param)
			}
			out = append(out, document{Text: s})
			continue
		}
		var d struct {
			Text *string `json:"text"`
			Key  *string `json:"key"`
		}
		if err := json.Unmarshal(raw, &d); err != nil || (d.Text == nil) == (d.Key == nil) {
			return nil, invalid(param, `%s: expected a string, {"text": string} or {"key": "<64 hex digits>"}`, param)
		}
		if d.Text != nil {
			if *d.Text == "" {
				return nil, invalid(param+".text", "%s.text is empty", param)
			}
			out = append(out, document{Text: *d.Text})
		} else {
			out = append(out, document{Key: *d.Key})
		}
	}
	return out, nil
}

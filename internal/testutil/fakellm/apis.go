package fakellm

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// textOf flattens message content: a string, or blocks with text (input
// and output text blocks, nested tool_result content).
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Type    string          `json:"type"`
		Text    string          `json:"text"`
		Content json.RawMessage `json:"content"`
		Output  json.RawMessage `json:"output"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return ""
	}
	var parts []string
	for _, b := range blocks {
		switch {
		case b.Text != "":
			parts = append(parts, b.Text)
		case len(b.Content) > 0:
			parts = append(parts, textOf(b.Content))
		case len(b.Output) > 0:
			parts = append(parts, textOf(b.Output))
		}
	}
	return strings.Join(parts, "\n")
}

// ---- Anthropic Messages ----

func (s *Server) anthropic(w http.ResponseWriter, r *http.Request, body []byte, rec Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
		Tools  []struct {
			Name        string         `json:"name"`
			InputSchema map[string]any `json:"input_schema"`
		} `json:"tools"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.record(rec)
		badRequest(w, err)
		return
	}
	rec.Model, rec.Stream = req.Model, req.Stream
	var tools []tool
	for _, t := range req.Tools {
		tools = append(tools, tool{Name: t.Name, Schema: t.InputSchema})
		rec.Tools = append(rec.Tools, t.Name)
	}
	var toolResult *string
	// The last user message (Claude Code may append a "system" message after it).
	lastUser := -1
	for i, m := range req.Messages {
		if m.Role == "user" {
			lastUser = i
		}
	}
	if lastUser >= 0 {
		last := req.Messages[lastUser].Content
		rec.LastUserText = textOf(last)
		// One user message can hold an earlier tool result followed by the
		// next prompt (clients merge consecutive user turns): the reply is
		// to a tool result only when no real text follows it.
		var blocks []struct {
			Type    string          `json:"type"`
			Text    string          `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(last, &blocks) == nil {
			var after []string
			for _, b := range blocks {
				switch {
				case b.Type == "tool_result":
					t := textOf(b.Content)
					toolResult, after = &t, nil
				case b.Type == "text" && !strings.HasPrefix(strings.TrimSpace(b.Text), "<system-reminder>"):
					after = append(after, b.Text)
				}
			}
			if toolResult != nil && len(after) > 0 {
				toolResult = nil
				rec.LastUserText = strings.Join(after, "\n")
			}
		}
	}
	p := s.answer(rec, toolResult, tools)

	msgID := s.nextID("msg")
	model := req.Model
	if model == "" {
		model = "claude-fake"
	}
	usage := map[string]any{"input_tokens": max(1, len(body)/4), "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	if !req.Stream {
		content := []any{map[string]any{"type": "text", "text": strings.Join(p.deltas(), "")}}
		stop := "end_turn"
		if p.Tool != "" {
			content = []any{map[string]any{"type": "tool_use", "id": s.nextID("toolu"), "name": p.Tool, "input": p.ToolArgs}}
			stop = "tool_use"
		}
		usage["output_tokens"] = 10
		writeJSON(w, map[string]any{"id": msgID, "type": "message", "role": "assistant", "model": model,
			"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	e := startSSE(w)
	e.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": usage}})
	stop := "end_turn"
	if p.Tool != "" {
		stop = "tool_use"
		args := marshal(p.ToolArgs)
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "tool_use", "id": s.nextID("toolu"), "name": p.Tool, "input": map[string]any{}}})
		e.event("ping", map[string]any{"type": "ping"})
		e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": string(args)}})
	} else {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "text", "text": ""}})
		e.event("ping", map[string]any{"type": "ping"})
		for _, d := range p.deltas() {
			if !s.pace(r.Context(), p) {
				return
			}
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "text_delta", "text": d}})
		}
	}
	e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	e.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 10}})
	e.event("message_stop", map[string]any{"type": "message_stop"})
}

// ---- OpenAI Responses ----

func (s *Server) responses(w http.ResponseWriter, r *http.Request, body []byte, rec Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
		Tools  []struct {
			Type       string         `json:"type"`
			Name       string         `json:"name"`
			Parameters map[string]any `json:"parameters"`
		} `json:"tools"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.record(rec)
		badRequest(w, err)
		return
	}
	rec.Model, rec.Stream = req.Model, req.Stream
	var tools []tool
	for _, t := range req.Tools {
		if t.Name == "" {
			continue
		}
		rec.Tools = append(rec.Tools, t.Name)
		if t.Type == "function" {
			tools = append(tools, tool{Name: t.Name, Schema: t.Parameters})
		}
	}
	var toolResult *string
	var inputStr string
	if json.Unmarshal(req.Input, &inputStr) == nil {
		rec.LastUserText = inputStr
	} else {
		var items []struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
			Output  json.RawMessage `json:"output"`
		}
		_ = json.Unmarshal(req.Input, &items)
		for i, it := range items {
			if it.Role == "user" {
				rec.LastUserText = textOf(it.Content)
			}
			if i == len(items)-1 && strings.HasSuffix(it.Type, "_call_output") {
				t := textOf(it.Output)
				toolResult = &t
			}
		}
	}
	p := s.answer(rec, toolResult, tools)

	respID := s.nextID("resp")
	model := req.Model
	if model == "" {
		model = "gpt-fake"
	}
	usage := map[string]any{"input_tokens": max(1, len(body)/4), "input_tokens_details": map[string]any{"cached_tokens": 0},
		"output_tokens": 10, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": max(1, len(body)/4) + 10}
	var item map[string]any
	if p.Tool != "" {
		args := marshal(p.ToolArgs)
		item = map[string]any{"type": "function_call", "id": s.nextID("fc"), "call_id": s.nextID("call"),
			"name": p.Tool, "arguments": string(args), "status": "completed"}
	} else {
		item = map[string]any{"type": "message", "id": s.nextID("msg"), "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": strings.Join(p.deltas(), ""), "annotations": []any{}}}}
	}
	response := func(status string, output []any) map[string]any {
		return map[string]any{"id": respID, "object": "response", "created_at": time.Now().Unix(), "status": status,
			"model": model, "output": output, "usage": usage}
	}
	if !req.Stream {
		writeJSON(w, response("completed", []any{item}))
		return
	}
	e := startSSE(w)
	seq := 0
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		e.event(typ, fields)
	}
	ev("response.created", map[string]any{"response": response("in_progress", []any{})})
	ev("response.in_progress", map[string]any{"response": response("in_progress", []any{})})
	if p.Tool != "" {
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["arguments"], added["status"] = "", "in_progress"
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": added})
		ev("response.function_call_arguments.delta", map[string]any{"output_index": 0, "item_id": item["id"], "delta": item["arguments"]})
		ev("response.function_call_arguments.done", map[string]any{"output_index": 0, "item_id": item["id"], "arguments": item["arguments"]})
	} else {
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": map[string]any{
			"type": "message", "id": item["id"], "role": "assistant", "status": "in_progress", "content": []any{}}})
		ev("response.content_part.added", map[string]any{"output_index": 0, "item_id": item["id"], "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
		for _, d := range p.deltas() {
			if !s.pace(r.Context(), p) {
				return
			}
			ev("response.output_text.delta", map[string]any{"output_index": 0, "item_id": item["id"], "content_index": 0, "delta": d})
		}
		text := strings.Join(p.deltas(), "")
		ev("response.output_text.done", map[string]any{"output_index": 0, "item_id": item["id"], "content_index": 0, "text": text})
		ev("response.content_part.done", map[string]any{"output_index": 0, "item_id": item["id"], "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": text, "annotations": []any{}}})
	}
	ev("response.output_item.done", map[string]any{"output_index": 0, "item": item})
	ev("response.completed", map[string]any{"response": response("completed", []any{item})})
}

// ---- OpenAI Chat Completions ----

func (s *Server) chat(w http.ResponseWriter, r *http.Request, body []byte, rec Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
		Tools  []struct {
			Function struct {
				Name       string         `json:"name"`
				Parameters map[string]any `json:"parameters"`
			} `json:"function"`
		} `json:"tools"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.record(rec)
		badRequest(w, err)
		return
	}
	rec.Model, rec.Stream = req.Model, req.Stream
	var tools []tool
	for _, t := range req.Tools {
		tools = append(tools, tool{Name: t.Function.Name, Schema: t.Function.Parameters})
		rec.Tools = append(rec.Tools, t.Function.Name)
	}
	var toolResult *string
	for i, m := range req.Messages {
		if m.Role == "user" {
			rec.LastUserText = textOf(m.Content)
		}
		if i == len(req.Messages)-1 && m.Role == "tool" {
			t := textOf(m.Content)
			toolResult = &t
		}
	}
	p := s.answer(rec, toolResult, tools)

	id := s.nextID("chatcmpl")
	model := req.Model
	if model == "" {
		model = "fake-model"
	}
	created := time.Now().Unix()
	usage := map[string]any{"prompt_tokens": max(1, len(body)/4), "completion_tokens": 10, "total_tokens": max(1, len(body)/4) + 10}
	var call map[string]any
	finish := "stop"
	if p.Tool != "" {
		args := marshal(p.ToolArgs)
		call = map[string]any{"id": s.nextID("call"), "type": "function", "function": map[string]any{"name": p.Tool, "arguments": string(args)}}
		finish = "tool_calls"
	}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": strings.Join(p.deltas(), "")}
		if call != nil {
			msg = map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{call}}
		}
		writeJSON(w, map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}, "usage": usage})
		return
	}
	e := startSSE(w)
	chunk := func(delta map[string]any, finish any, withUsage bool) {
		c := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
		if withUsage {
			c["usage"] = usage
		}
		e.event("", c)
	}
	chunk(map[string]any{"role": "assistant", "content": ""}, nil, false)
	if call != nil {
		fn := call["function"].(map[string]any)
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": call["id"], "type": "function",
			"function": map[string]any{"name": fn["name"], "arguments": ""}}}}, nil, false)
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": fn["arguments"]}}}}, nil, false)
	} else {
		for _, d := range p.deltas() {
			if !s.pace(r.Context(), p) {
				return
			}
			chunk(map[string]any{"content": d}, nil, false)
		}
	}
	chunk(map[string]any{}, finish, true)
	e.raw("data: [DONE]\n\n")
}

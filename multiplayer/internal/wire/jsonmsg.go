package wire

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Client-protocol messages in the JSON encoding.

// members calls fn for each member of the JSON object at src[i] (src valid),
// with the decoded key and the value's start index. It reports false if the
// value there is not an object.
func members(src []byte, i int, fn func(key []byte, v int) error) (bool, error) {
	i = skipWS(src, i)
	if i >= len(src) || src[i] != '{' {
		return false, nil
	}
	i = skipWS(src, i+1)
	for i < len(src) && src[i] == '"' {
		j, _ := skipString(src, i)
		key, ok := unquoteJSON(src[i:j])
		if !ok {
			return true, malformed("bad JSON key")
		}
		v := skipWS(src, skipWS(src, j)+1)
		if err := fn(key, v); err != nil {
			return true, err
		}
		i = skipWS(src, skipValue(src, v))
		if i < len(src) && src[i] == ',' {
			i = skipWS(src, i+1)
		}
	}
	return true, nil
}

// span returns the value starting at src[v].
func span(src []byte, v int) []byte { return src[v:skipValue(src, v)] }

// validJSONText reports whether b is one JSON value in valid UTF-8: a text
// frame cannot be anything else, and a client's TextDecoder never produces
// invalid UTF-8.
func validJSONText(b []byte) bool { return utf8.Valid(b) && validJSON(b) }

func decodeToServerJSON(frame []byte) (ToServer, error) {
	if !validJSONText(frame) {
		return ToServer{}, malformed("not valid JSON")
	}
	var tag []byte
	val := -1
	isObj, err := members(frame, 0, func(key []byte, v int) error {
		if string(key) != "body" {
			return nil // unknown fields are ignored, as zod strips them
		}
		ok, err := members(frame, v, func(key []byte, v int) error {
			switch string(key) {
			case "tag":
				s, _, ok := jsonStringAt(frame, v)
				if !ok {
					return malformed("body.tag is not a string")
				}
				tag = s
			case "val":
				val = v
			}
			return nil
		})
		if err == nil && !ok {
			err = malformed("body is not an object")
		}
		return err
	})
	if err != nil {
		return ToServer{}, err
	}
	if !isObj {
		return ToServer{}, malformed("message is not an object")
	}
	if val < 0 || frame[val] != '{' {
		return ToServer{}, malformed("body.val is not an object")
	}
	var m ToServer
	switch string(tag) {
	case "ActionRequest":
		m.Kind = Action
		var haveID, haveName bool
		args := -1
		_, err = members(frame, val, func(key []byte, v int) error {
			switch string(key) {
			case "id":
				id, err := jsonUint(frame, v)
				if err != nil {
					return err
				}
				m.ID, haveID = id, true
			case "name":
				s, _, ok := jsonStringAt(frame, v)
				if !ok {
					return malformed("name is not a string")
				}
				m.Name, haveName = string(s), true
			case "args":
				args = v
			}
			return nil
		})
		if err != nil {
			return ToServer{}, err
		}
		if !haveID || !haveName || args < 0 {
			return ToServer{}, malformed("ActionRequest needs id, name and args")
		}
		if m.Args, err = reviveArgs(frame, args); err != nil {
			return ToServer{}, err
		}
		return m, nil
	case "SubscriptionRequest":
		m.Kind = Subscription
		var haveName, haveSub bool
		_, err = members(frame, val, func(key []byte, v int) error {
			switch string(key) {
			case "eventName":
				s, _, ok := jsonStringAt(frame, v)
				if !ok {
					return malformed("eventName is not a string")
				}
				m.EventName, haveName = string(s), true
			case "subscribe":
				switch string(span(frame, v)) {
				case "true":
					m.Subscribe = true
				case "false":
					m.Subscribe = false
				default:
					return malformed("subscribe is not a boolean")
				}
				haveSub = true
			}
			return nil
		})
		if err != nil {
			return ToServer{}, err
		}
		if !haveName || !haveSub {
			return ToServer{}, malformed("SubscriptionRequest needs eventName and subscribe")
		}
		return m, nil
	default:
		return ToServer{}, malformed("unknown ToServer tag %q", tag)
	}
}

// jsonUint reads a message id: the client writes a bigint as
// ["$BigInt", "n"]; a plain non-negative integer is accepted too.
func jsonUint(src []byte, v int) (uint64, error) {
	var digits []byte
	if src[v] == '[' {
		// Exactly ["$BigInt", "digits"].
		i := skipWS(src, v+1)
		tag, j, ok := jsonStringAt(src, i)
		if ok && string(tag) == tagBigInt {
			if i = skipWS(src, j); i < len(src) && src[i] == ',' {
				digits, j, ok = jsonStringAt(src, skipWS(src, i+1))
				ok = ok && closeArray(src, j) == skipValue(src, v)
			} else {
				ok = false
			}
		}
		if !ok || digits == nil {
			return 0, malformed("id is not a bigint")
		}
	} else {
		digits = span(src, v)
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return 0, malformed("id %q is not a 64-bit unsigned integer", digits)
	}
	return n, nil
}

func reviveArgs(src []byte, v int) ([]byte, error) {
	if src[v] != '[' {
		return nil, badValue("action args are not an array")
	}
	vv := span(src, v)
	out, undef, err := reviveJSON(make([]byte, 0, len(vv)), vv)
	if err != nil {
		return nil, err
	}
	if undef || len(out) == 0 || out[0] != '[' {
		// ["$Set", …] and ["$Undefined", 0] are not argument lists.
		return nil, badValue("action args are not an array")
	}
	return out, nil
}

func decodeHTTPArgsJSON(body []byte) ([]byte, error) {
	if !validJSONText(body) {
		return nil, malformed("not valid JSON")
	}
	args := -1
	isObj, err := members(body, 0, func(key []byte, v int) error {
		if string(key) == "args" {
			args = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !isObj || args < 0 {
		return nil, malformed(`body is not {"args": […]}`)
	}
	return reviveArgs(body, args)
}

// checkOutgoing validates a ToClient before any byte is written. Values must
// be valid UTF-8 too: a JSON frame travels as a WebSocket text message, and a
// browser drops the connection on invalid UTF-8 there.
func checkOutgoing(m ToClient) error {
	switch m.Kind {
	case Init:
	case Error:
		if m.Metadata != nil && !validJSONText(m.Metadata) {
			return invalidOutgoing("error metadata is not valid JSON")
		}
	case ActionResponse:
		if m.Output != nil && !validJSONText(m.Output) {
			return invalidOutgoing("action output is not valid JSON")
		}
	case Event:
		if !validJSONText(m.Args) {
			return invalidOutgoing("event args are not valid JSON")
		}
		if t := bytes.TrimLeft(m.Args, " \t\r\n"); len(t) == 0 || t[0] != '[' {
			return invalidOutgoing("event args are not an array")
		}
	default:
		return invalidOutgoing("unknown ToClient kind %d", m.Kind)
	}
	return nil
}

func appendJSONBigInt(dst []byte, n uint64) []byte {
	dst = append(dst, `["$BigInt","`...)
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, `"]`...)
}

func encodeToClientJSON(dst []byte, m ToClient) ([]byte, error) {
	if err := checkOutgoing(m); err != nil {
		return nil, err
	}
	dst = append(dst, `{"body":{"tag":`...)
	switch m.Kind {
	case Init:
		dst = append(dst, `"Init","val":{"actorId":`...)
		dst = appendJSONString(dst, m.ActorID)
		dst = append(dst, `,"connectionId":`...)
		dst = appendJSONString(dst, m.ConnectionID)
	case Error:
		dst = append(dst, `"Error","val":{`...)
		dst = appendErrorFields(dst, m.Group, m.Code, m.Message, m.Metadata, m.Actor)
		// actionId is nullable but not optional: without it the client's
		// schema drops the whole message.
		dst = append(dst, `,"actionId":`...)
		if m.ActionID != nil {
			dst = appendJSONBigInt(dst, *m.ActionID)
		} else {
			dst = append(dst, "null"...)
		}
	case ActionResponse:
		dst = append(dst, `"ActionResponse","val":{"id":`...)
		dst = appendJSONBigInt(dst, m.ID)
		// The client's schema requires output, and JSON cannot say
		// undefined (2.0/2.2 clients reject ["$Undefined",0]): nil is null.
		dst = append(dst, `,"output":`...)
		if m.Output != nil {
			dst = appendCompatJSON(dst, m.Output)
		} else {
			dst = append(dst, "null"...)
		}
	case Event:
		dst = append(dst, `"Event","val":{"name":`...)
		dst = appendJSONString(dst, m.Name)
		dst = append(dst, `,"args":`...)
		dst = appendCompatJSON(dst, m.Args)
	}
	return append(dst, "}}}"...), nil
}

func appendErrorFields(dst []byte, group, code, message string, metadata []byte, actor *ActorSpecifier) []byte {
	dst = append(dst, `"group":`...)
	dst = appendJSONString(dst, group)
	dst = append(dst, `,"code":`...)
	dst = appendJSONString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, message)
	if metadata != nil {
		dst = append(dst, `,"metadata":`...)
		dst = appendCompatJSON(dst, metadata)
	}
	if actor != nil {
		dst = append(dst, `,"actor":{"actorId":`...)
		dst = appendJSONString(dst, actor.ActorID)
		dst = append(dst, `,"generation":`...)
		if actor.Generation <= maxSafeJSUint {
			dst = strconv.AppendUint(dst, actor.Generation, 10)
		} else {
			dst = appendJSONBigInt(dst, actor.Generation)
		}
		if actor.Key != "" {
			dst = append(dst, `,"key":`...)
			dst = appendJSONString(dst, actor.Key)
		}
		dst = append(dst, '}')
	}
	return dst
}

func encodeHTTPOutputJSON(dst, output []byte) ([]byte, error) {
	if output == nil {
		return append(dst, `{"output":null}`...), nil // see encodeToClientJSON
	}
	if !validJSONText(output) {
		return nil, invalidOutgoing("output is not valid JSON")
	}
	dst = append(dst, `{"output":`...)
	dst = appendCompatJSON(dst, output)
	return append(dst, '}'), nil
}

func encodeHTTPErrorJSON(dst []byte, e HTTPError) ([]byte, error) {
	if e.Metadata != nil && !validJSONText(e.Metadata) {
		return nil, invalidOutgoing("error metadata is not valid JSON")
	}
	dst = append(dst, '{')
	dst = appendErrorFields(dst, e.Group, e.Code, e.Message, e.Metadata, e.Actor)
	return append(dst, '}'), nil
}

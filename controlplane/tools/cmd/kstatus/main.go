// Command kstatus prints the kstatus verdict of Kubernetes objects read as JSON on stdin.
//
// The input is one object, a List (kind ending in "List" with "items"), a JSON array of
// objects, or a stream of any of those one after another. For every object it prints one JSON
// line: {"kind", "namespace", "name", "status", "message"}, where status is what
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute says: Current, InProgress, Failed,
// Terminating, NotFound or Unknown. Input that is not JSON, or a value that is not a
// Kubernetes object, ends it with exit status 2 and a message on stderr naming the value.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func judge(u *unstructured.Unstructured) verdict {
	v := verdict{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
	result, err := status.Compute(u)
	if err != nil {
		v.Status, v.Message = string(status.UnknownStatus), err.Error()
		return v
	}
	v.Status, v.Message = string(result.Status), result.Message
	return v
}

// objects turns one JSON value into the objects it holds.
func objects(raw json.RawMessage) ([]*unstructured.Unstructured, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, err
		}
		var all []*unstructured.Unstructured
		for i, item := range items {
			got, err := objects(item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			all = append(all, got...)
		}
		return all, nil
	}
	u := &unstructured.Unstructured{}
	// apimachinery's JSON decoding keeps whole numbers as int64, as status.Compute expects.
	if err := u.UnmarshalJSON(trimmed); err != nil {
		return nil, err
	}
	if !u.IsList() {
		return []*unstructured.Unstructured{u}, nil
	}
	var all []*unstructured.Unstructured
	err := u.EachListItem(func(item runtime.Object) error {
		member, ok := item.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("list item of type %T", item)
		}
		all = append(all, member)
		return nil
	})
	return all, err
}

func run(in io.Reader, out io.Writer) error {
	decoder := json.NewDecoder(bufio.NewReader(in))
	encoder := json.NewEncoder(out)
	encoder.SetEscapeHTML(false)
	for index := 0; ; index++ {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				if index == 0 {
					return errors.New("no input: expected Kubernetes objects as JSON on stdin")
				}
				return nil
			}
			return fmt.Errorf("input value %d is not valid JSON: %w", index+1, err)
		}
		found, err := objects(raw)
		if err != nil {
			return fmt.Errorf("input value %d is not a Kubernetes object: %w", index+1, err)
		}
		for _, u := range found {
			if err := encoder.Encode(judge(u)); err != nil {
				return err
			}
		}
	}
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < objects.json  (one object, a List, an array or a stream)")
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	err := run(os.Stdin, out)
	if flushErr := out.Flush(); err == nil {
		err = flushErr
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(2)
	}
}

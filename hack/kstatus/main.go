// Command kstatus prints what the kstatus library (sigs.k8s.io/cli-utils/pkg/kstatus/status)
// computes for Kubernetes objects: the status Flux, kpt and `kubectl wait`-style tools act on.
//
// Input: one JSON object per line on stdin. Output: one JSON line per input line,
// {"status": "...", "message": "..."} or {"error": "..."} for an object kstatus cannot read.
// It exists so that Rolekeeper's tests check its status conditions against the real library,
// not against a port of its rules.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type answer struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func compute(line []byte) answer {
	// As the API machinery decodes objects: whole numbers as int64 (generation etc.).
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(line); err != nil {
		return answer{Error: err.Error()}
	}
	res, err := status.Compute(u)
	if err != nil {
		return answer{Error: err.Error()}
	}
	return answer{Status: res.Status.String(), Message: res.Message}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20) // a status may carry findings: allow large lines
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		if err := out.Encode(compute(in.Bytes())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

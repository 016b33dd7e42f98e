// The compiled anchor: what the agent's no-frills job costs without an interpreter. Pages
// GetParametersByPath under PARAMETER_STORE_PREFIX (recursive, decrypted), sets each value as
// the plain boto3 script names it, then execs the command. Built by bench/run.py, never kept.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/ssm"
)

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)

func fail(what string, err error, code int) {
	fmt.Fprintf(os.Stderr, "ssm-exec: %s: %v\n", what, err)
	os.Exit(code)
}

func main() {
	if prefix := os.Getenv("PARAMETER_STORE_PREFIX"); prefix != "" {
		cfg := aws.NewConfig()
		if url := os.Getenv("AWS_ENDPOINT_URL"); url != "" { // this SDK predates the variable
			cfg = cfg.WithEndpoint(url)
		}
		client := ssm.New(session.Must(session.NewSession(cfg)))
		input := &ssm.GetParametersByPathInput{
			Path: aws.String(prefix), Recursive: aws.Bool(true), WithDecryption: aws.Bool(true),
		}
		err := client.GetParametersByPathPages(input, func(page *ssm.GetParametersByPathOutput, _ bool) bool {
			for _, p := range page.Parameters {
				rest := strings.TrimPrefix(aws.StringValue(p.Name), prefix)
				os.Setenv(strings.ToUpper(strings.Trim(nonAlnum.ReplaceAllString(rest, "_"), "_")), aws.StringValue(p.Value))
			}
			return true
		})
		if err != nil {
			fail("GetParametersByPath", err, 69)
		}
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fail(os.Args[1], err, 127)
	}
	fail(path, syscall.Exec(path, os.Args[1:], os.Environ()), 126)
}

// Command pgtmp starts and stops a throwaway PostgreSQL server for scripts (make demo).
//
//	pgtmp start DIR   start a server with its data under DIR (created), print its
//	                  superuser URL on stdout, write it to DIR/url, and exit
//	                  leaving the server running
//	pgtmp stop DIR    stop that server and remove DIR
//
// The URL holds a password: keep it out of logs.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/eventaccess/terraform-provider-eventaccess/internal/pgtest"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pgtmp start DIR | pgtmp stop DIR")
	os.Exit(2)
}

func main() {
	if len(os.Args) != 3 {
		usage()
	}
	dir := os.Args[2]
	switch os.Args[1] {
	case "start":
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s, err := pgtest.StartWith(ctx, pgtest.Options{Dir: dir, Detach: true, IgnoreEnv: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtmp:", err)
			os.Exit(1)
		}
		fmt.Println(s.URL())
	case "stop":
		s, err := pgtest.Attach(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtmp:", err)
			os.Exit(1)
		}
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtmp:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

package main

import (
	"fmt"

	"github.com/pkg/errors"
	"golang.org/x/text/language"
)

func main() {
	fmt.Println(errors.New("x"), language.English)
}

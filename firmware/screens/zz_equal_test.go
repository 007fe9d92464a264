package screens

import (
	"reflect"
	"testing"
)

// Temporary (issue 15): the file holds exactly what the Go literals held.
func TestLoadedEqualsLiterals(t *testing.T) {
	for name, c := range map[string][2]any{
		"screens":       {screens, loaded.screens},
		"texts":         {texts, loaded.texts},
		"maintTexts":    {maintTexts, loaded.maintTexts},
		"rejections":    {rejections, loaded.rejections},
		"rejectUnknown": {rejectUnknown, loaded.rejectUnknown},
	} {
		if !reflect.DeepEqual(c[0], c[1]) {
			t.Errorf("%s differs", name)
		}
	}
	if len(loaded.screens) != 153 || len(loaded.texts) != 104 || len(loaded.rejections) != 43 {
		t.Errorf("%d %d %d", len(loaded.screens), len(loaded.texts), len(loaded.rejections))
	}
}

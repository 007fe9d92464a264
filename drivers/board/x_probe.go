package board

import (
	_ "periph.io/x/conn/v3/gpio/gpioreg"
	_ "periph.io/x/conn/v3/i2c/i2creg"
	_ "periph.io/x/conn/v3/i2c/i2ctest"
	_ "periph.io/x/devices/v3/ssd1306"
	_ "periph.io/x/devices/v3/ssd1306/image1bit"
	_ "periph.io/x/host/v3"
	_ "golang.org/x/image/font/inconsolata"
)

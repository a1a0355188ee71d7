// stb's implementations, compiled into the image fuzz target itself (instead of Debian's
// libstb.so) so that the decoders are instrumented too: their coverage guides the fuzzer.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#ifndef LAYERWISE_CLIBPNG_SHIM_H
#define LAYERWISE_CLIBPNG_SHIM_H
#include <png.h>
#endif

// Where the model tests find model files: $VKI_MODEL_DIR, else the model cache that
// tools/fetch_models.sh fills (${XDG_CACHE_HOME:-~/.cache}/vkinfer/models).
#pragma once

#include <cstdlib>
#include <string>

inline std::string model_dir()
{
    const char *dir = std::getenv("VKI_MODEL_DIR");
    if (dir && dir[0]) return dir;
    const char *xdg = std::getenv("XDG_CACHE_HOME");
    const char *home = std::getenv("HOME");
    std::string cache = xdg && xdg[0] ? xdg : std::string(home ? home : ".") + "/.cache";
    return cache + "/vkinfer/models";
}

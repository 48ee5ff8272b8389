// Loads the app's wasm (wasm-bindgen's `--target web` glue) and runs its main().
import init from './app.js';

init();

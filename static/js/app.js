// Entry point (an ES module, so it runs after the document is parsed). Each page's behaviour is
// switched on by a data attribute in its template; without JavaScript every page still works.

import { initFindMore } from "./find-more.js";
import { initLibrary, initLibraryFilter } from "./library.js";
import { initPhotoPage } from "./photo-page.js";
import { initSettings } from "./settings.js";
import { initUi } from "./ui.js";
import { initUpload } from "./upload.js";
import { initVideoPage } from "./video-page.js";
import { initFavourite, initWords } from "./words.js";

document.documentElement.classList.replace("no-js", "js");
initUi(document);

const upload = document.querySelector("[data-upload-app]");
if (upload) initUpload(upload);

const photoPage = document.querySelector("[data-photo-app]");
if (photoPage) initPhotoPage(photoPage);

const videoPage = document.querySelector("[data-video-app]");
if (videoPage) initVideoPage(videoPage);

const library = document.querySelector("[data-library]");
if (library) initLibrary(library);

const filter = document.querySelector("[data-library-filter]");
if (filter) initLibraryFilter(filter);

document.querySelectorAll("[data-favourite-form]").forEach(initFavourite);
document.querySelectorAll("[data-words]").forEach(initWords);
document.querySelectorAll("[data-find-more]").forEach(initFindMore);

const settings = document.querySelector("[data-settings-form]");
if (settings) initSettings(settings);
